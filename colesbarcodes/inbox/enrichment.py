"""Barcode-enrichment inbox files: which SKUs a file asks for, and when it is done.

A file is claimed like the loader's (see :mod:`colesbarcodes.inbox.claims`), read whole (one
SKU a line: ``{"sku": ...}`` or any product line the loader takes), de-duplicated, and
bad lines are quarantined with their line numbers. The file leaves the inbox only when
every SKU has a stored outcome; SKUs that failed go to a new, smaller inbox file so the
next run retries just those.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from colesbarcodes.files import write_json_lines
from colesbarcodes.inbox.claims import ClaimedFile, Inbox
from colesbarcodes.inbox.line_reader import LineReader
from colesbarcodes.inbox.lines import LineError, LineRows, ProductLine
from colesbarcodes.inbox.reading import iter_lines

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from colesbarcodes.gtin import Gtin

__all__ = [
    "EnrichmentFile",
    "EnrichmentInbox",
    "SkuRequest",
    "sku_value",
    "spill_file",
    "write_enrichment_file",
]

logger = logging.getLogger(__name__)

_RETRY_PREFIX_RE = re.compile(r"^retry-[0-9T]+-[0-9a-f]+--")


@dataclass(slots=True)
class SkuRequest:
    sku: str
    store_id: str | None
    line_no: int
    barcode: Gtin | None = None
    name: str | None = None
    brand: str | None = None
    size: str | None = None


@dataclass
class EnrichmentFile:
    claimed: ClaimedFile
    skus: dict[str, SkuRequest] = field(default_factory=dict)
    quarantined: int = 0
    outcomes: set[str] = field(default_factory=set)
    failed: dict[str, str | None] = field(default_factory=dict)

    company: str = "coles"

    @property
    def name(self) -> str:
        """The claim name: unique per claimed file, recorded with each lookup."""
        return self.claimed.claim_name

    @property
    def file(self) -> str:
        """The name its SKUs' outcomes are recorded under (the claim name)."""
        return self.claimed.claim_name

    @property
    def label(self) -> str:
        return self.claimed.original_name

    @property
    def log_level(self) -> int:
        return logging.INFO

    @property
    def complete(self) -> bool:
        return len(self.outcomes) >= len(self.skus)

    def record(self, sku: str, failed: bool) -> None:
        self.outcomes.add(sku)
        if failed:
            self.failed[sku] = self.skus[sku].store_id if sku in self.skus else None


class EnrichmentInbox:
    """The barcode-enrichment inbox of one company's crawl."""

    def __init__(
        self,
        root: Path | str,
        *,
        company: str = "coles",
        archive: bool = False,
        max_line_bytes: int = 1 << 20,
    ) -> None:
        self.inbox = Inbox(root)
        self.company = company
        self.archive = archive
        self.max_line_bytes = max_line_bytes
        self.written: set[str] = set()  # retry files of this run: taken by the next run

    def claim_next(self) -> EnrichmentFile | None:
        claimed = self.inbox.claim_next(exclude=self.written)
        if claimed is None:
            return None
        job = EnrichmentFile(claimed, company=self.company)
        bad: list[dict[str, object]] = []
        reader = LineReader(claimed.original_name)
        with claimed.open() as stream:
            for number, raw in iter_lines(stream, self.max_line_bytes):
                try:
                    if raw is None:
                        raise LineError(f"line longer than {self.max_line_bytes} bytes")
                    read = reader.read(raw)
                    lines = [read] if isinstance(read, ProductLine) else _lines_of(read)
                    for line in lines:
                        if line.company != self.company:
                            raise LineError(f"company {line.company!r} is not crawled here")
                except LineError as exc:
                    bad.append(
                        {
                            "file": claimed.original_name,
                            "line": number,
                            "reason": exc.reason,
                            "raw": None if raw is None else raw[:10_000].decode("utf-8", "replace"),
                        }
                    )
                    continue
                for line in lines:
                    if line.sku not in job.skus:
                        job.skus[line.sku] = SkuRequest(
                            line.sku,
                            line.store_id,
                            number,
                            line.barcode,
                            line.name,
                            line.brand,
                            line.size,
                        )
        job.quarantined = len(bad)
        if bad:
            write_json_lines(self.inbox.quarantine_path(claimed), bad)
            logger.warning("%d bad lines of %s quarantined", len(bad), claimed.original_name)
        return job

    def finish(self, job: EnrichmentFile) -> Path | None:
        """Write the retry file for failed SKUs (if any), then remove or archive the file."""
        retry = None
        if job.failed:
            stem = _RETRY_PREFIX_RE.sub("", job.claimed.original_name)
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
            retry = self.inbox.root / f"retry-{stamp}-{os.urandom(3).hex()}--{stem}"
            write_enrichment_file(retry, sorted(job.failed.items()))
            self.written.add(retry.name)
        self.inbox.finish(job.claimed, keep=self.archive)
        return retry


def _lines_of(rows: LineRows) -> list[ProductLine]:
    """The product lines of a line of skipped or several rows; a row that cannot be read
    makes the line bad (the reason names the row)."""
    if rows.errors:
        raise LineError(rows.errors[0])
    return [line for _, line in rows.lines]


def sku_value(sku: str) -> int | str:
    """A SKU as the inbox files write it: a number when it is one."""
    return int(sku) if sku.isdigit() else sku


def write_enrichment_file(
    path: Path, skus: Iterable[tuple[str, str | None]], company: str | None = None
) -> int:
    """Write (SKU, store) pairs as an enrichment inbox file (``{"sku", "store_id"}`` lines,
    with ``company`` when given), atomically; returns the number of SKUs."""
    return write_json_lines(
        path,
        (
            {"company": company, "sku": sku_value(sku), "store_id": store}
            if company
            else {"sku": sku_value(sku), "store_id": store}
            for sku, store in skus
        ),
    )


def spill_file(root: Path, stamp: str, rows: Iterable[dict[str, object]]) -> Path:
    """Outcomes a crawl could not store, written to the inbox as product lines for the
    next run (``spill-<stamp>-<pid>.jsonl``)."""
    path = root / f"spill-{stamp}-{os.getpid()}.jsonl"
    write_json_lines(path, rows)
    return path
