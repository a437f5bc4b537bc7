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

import orjson

from colesbarcodes.db.lookups import stored_for_file
from colesbarcodes.inbox.claims import ClaimedFile, Inbox, iter_lines
from colesbarcodes.inbox.lines import LineError, parse_line, store_from_filename

if TYPE_CHECKING:
    from pathlib import Path

    from sqlalchemy.orm import Session

    from colesbarcodes.gtin import Gtin

__all__ = ["EnrichmentFile", "EnrichmentInbox", "SkuRequest"]

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

    @property
    def name(self) -> str:
        """The claim name: unique per claimed file, recorded with each lookup."""
        return self.claimed.claim_name

    @property
    def label(self) -> str:
        return self.claimed.original_name

    @property
    def log_level(self) -> int:
        return logging.INFO

    def stored(self, session: Session) -> dict[str, str]:
        """SKU → outcome an earlier run already stored for this file (a resumed file)."""
        return stored_for_file(session, self.name)

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
        job = EnrichmentFile(claimed)
        bad: list[dict[str, object]] = []
        default_store = store_from_filename(claimed.original_name)
        with claimed.open() as stream:
            for number, raw in iter_lines(stream, self.max_line_bytes):
                try:
                    if raw is None:
                        raise LineError(f"line longer than {self.max_line_bytes} bytes")
                    line = parse_line(raw, default_store)
                    if line is None:
                        continue
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
            self._write(self.inbox.quarantine_path(claimed), bad)
            logger.warning("%d bad lines of %s quarantined", len(bad), claimed.original_name)
        return job

    def finish(self, job: EnrichmentFile) -> Path | None:
        """Write the retry file for failed SKUs (if any), then remove or archive the file."""
        retry = None
        if job.failed:
            stem = _RETRY_PREFIX_RE.sub("", job.claimed.original_name)
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
            retry = self.inbox.root / f"retry-{stamp}-{os.urandom(3).hex()}--{stem}"
            self._write(
                retry,
                [
                    {"sku": _sku_value(s), "store_id": store}
                    for s, store in sorted(job.failed.items())
                ],
            )
            self.written.add(retry.name)
        self.inbox.finish(job.claimed, keep=self.archive)
        return retry

    @staticmethod
    def _write(path: Path, rows: list[dict[str, object]]) -> None:
        """Write atomically under a name the inbox does not take, then rename."""
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(path.name + ".part")
        with temp.open("wb") as out:
            for row in rows:
                out.write(orjson.dumps(row) + b"\n")
        os.replace(temp, path)


def _sku_value(sku: str) -> int | str:
    return int(sku) if sku.isdigit() else sku
