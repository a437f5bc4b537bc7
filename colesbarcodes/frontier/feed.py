"""``coles-loader frontier feed``: the barcode-enrichment inbox into the shared frontier.

Files are claimed and read exactly as the crawl reads them
(:class:`~colesbarcodes.inbox.enrichment.EnrichmentInbox`: oldest first, an abandoned claim
first, SKUs de-duplicated, bad lines quarantined). A file is archived only once all its
SKUs are in the stream; if feeding fails it stays claimed in ``processing/`` and the next
feed takes it up again (SKUs already in the frontier are not added twice).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from colesbarcodes.frontier.stream import FeedResult

if TYPE_CHECKING:
    from collections.abc import Iterator

    from colesbarcodes.frontier.stream import Frontier
    from colesbarcodes.inbox.enrichment import EnrichmentFile, EnrichmentInbox

__all__ = ["FedFile", "FeedReport", "feed_inbox"]


@dataclass
class FedFile:
    name: str
    skus: int
    added: int
    already_queued: int
    quarantined: int
    archived_as: str | None


@dataclass
class FeedReport:
    files: list[FedFile] = field(default_factory=list)
    retried: FeedResult = field(default_factory=FeedResult)

    @property
    def added(self) -> int:
        return self.retried.added + sum(f.added for f in self.files)

    @property
    def already_queued(self) -> int:
        return self.retried.already_queued + sum(f.already_queued for f in self.files)


def _entries(job: EnrichmentFile) -> Iterator[dict[str, str | None]]:
    for sku, line in job.skus.items():
        entry: dict[str, str | None] = {"sku": sku, "store_id": line.store_id, "file": job.name}
        if line.barcode is not None:
            entry.update(
                barcode=line.barcode.code, name=line.name, brand=line.brand, size=line.size
            )
        yield entry


def feed_inbox(
    frontier: Frontier, enrichment: EnrichmentInbox, *, retry_failed: bool = True
) -> FeedReport:
    """Feed every inbox file (and, first, the SKUs that failed last time) into the frontier."""
    report = FeedReport()
    if retry_failed:
        report.retried = frontier.refeed_failed()
    while (job := enrichment.claim_next()) is not None:
        try:
            result = frontier.feed(_entries(job))
        except BaseException:
            job.claimed.release()  # stays in processing/: the next feed resumes it
            raise
        archived = enrichment.inbox.finish(job.claimed, keep=True)
        report.files.append(
            FedFile(
                name=job.claimed.original_name,
                skus=len(job.skus),
                added=result.added,
                already_queued=result.already_queued,
                quarantined=job.quarantined,
                archived_as=None if archived is None else str(archived),
            )
        )
    return report
