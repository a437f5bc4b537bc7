"""Importing product inbox files: claim, stream, batch, commit, archive.

A file moves ``inbox → processing/ → archive/``. Each batch of lines is applied and the
ledger advanced in one transaction, so a crash anywhere loses nothing and re-running
resumes after the last committed batch. Bad lines go to the quarantine file
(``quarantine/<file>.quarantine.jsonl``) with their line number and reason; the rest of
the file is imported. Transient database errors (deadlocks, serialization failures,
a concurrent writer taking the same new barcode, a dropped connection) retry the batch.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

import orjson

from colesbarcodes.db import ledger
from colesbarcodes.db.catalog import BatchStats, apply_lines
from colesbarcodes.db.engine import DATABASE_ERRORS, session_factory
from colesbarcodes.inbox import ClaimedFile, Inbox, iter_lines
from colesbarcodes.lines import LineError, ProductLine, parse_line, store_from_filename

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session

__all__ = ["FileReport", "ImportOptions", "count_lines", "import_file"]

logger = logging.getLogger(__name__)

INBOX_NAME = "products"


@dataclass
class ImportOptions:
    batch_size: int = 20_000
    max_line_bytes: int = 1 << 20
    archive: bool = True
    retries: int = 5


@dataclass
class FileReport:
    name: str
    lines: int = 0
    imported: int = 0
    quarantined: int = 0
    skipped: int = 0
    barcodes_rejected: int = 0
    resumed_from: int = 0
    stats: BatchStats = field(default_factory=BatchStats)
    quarantine_file: Path | None = None
    seconds: float = 0.0


Progress = Callable[[int], None]
T = TypeVar("T")


def count_lines(path: Path) -> int:
    """Lines in a file, counted in 1 MiB blocks (for the progress bar's total)."""
    total = 0
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            total += block.count(b"\n")
    return total


def _retrying(engine: Engine, attempts: int, work: Callable[[Session], None]) -> None:
    factory = session_factory(engine)
    for attempt in range(1, attempts + 1):
        try:
            with factory.begin() as session:
                work(session)
            return
        except DATABASE_ERRORS as exc:
            if attempt == attempts:
                raise
            delay = min(0.2 * 2**attempt, 5.0)
            logger.warning(
                "Batch failed (%s), retrying in %.1fs (attempt %d/%d)",
                type(getattr(exc, "orig", exc)).__name__,
                delay,
                attempt,
                attempts,
            )
            time.sleep(delay)


@dataclass
class _Batch:
    lines: list[tuple[int, ProductLine]] = field(default_factory=list)
    bad: list[ledger.Quarantined] = field(default_factory=list)
    skipped: int = 0
    count: int = 0  # lines read, good or bad
    last_line: int = 0


_DONE = object()


def prefetch(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Produce ``items`` in a thread, ``depth`` ahead: parsing the next batch overlaps the
    database's work on the current one (the driver releases the GIL while it waits)."""
    buffer: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        buffer.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put(_DONE)
        except BaseException as exc:  # handed over to the consumer, raised there
            buffer.put(exc)

    thread = threading.Thread(target=produce, name="inbox-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()


class _FileImport:
    def __init__(
        self, engine: Engine, claimed: ClaimedFile, options: ImportOptions, progress: Progress
    ) -> None:
        self.engine = engine
        self.claimed = claimed
        self.options = options
        self.progress = progress
        self.report = FileReport(claimed.original_name)
        self.default_store = store_from_filename(claimed.original_name)
        self.default_seen = claimed.mtime
        self.file_id = 0

    def run(self, inbox: Inbox) -> FileReport:
        started = time.monotonic()
        factory = session_factory(self.engine)
        with factory.begin() as session:
            progress = ledger.open_file(
                session, INBOX_NAME, self.claimed.claim_name, self.claimed.original_name
            )
        self.file_id = progress.file_id
        self.report.resumed_from = progress.lines_done
        if not progress.done:
            for batch in prefetch(self._batches(progress.lines_done)):
                self._commit(batch)
        self.report.quarantine_file = self._write_quarantine(inbox)
        with factory.begin() as session:
            ledger.finish(session, self.file_id)
            counts = ledger.file_counts(session, self.file_id)
        inbox.finish(self.claimed, keep=self.options.archive)
        self.report.imported = counts["imported"]
        self.report.quarantined = counts["quarantined"]
        self.report.skipped = counts["skipped"]
        self.report.barcodes_rejected = counts["barcodes_rejected"]
        self.report.seconds = time.monotonic() - started
        return self.report

    def _batches(self, lines_done: int) -> Iterator[_Batch]:
        """Parsed batches of the lines after ``lines_done``; the last one may be empty."""
        batch = _Batch(last_line=lines_done)
        with self.claimed.open() as stream:
            for number, raw in iter_lines(stream, self.options.max_line_bytes):
                if number <= lines_done:
                    continue
                self._take(batch, number, raw)
                if batch.count >= self.options.batch_size:
                    yield batch
                    batch = _Batch(last_line=number)
        yield batch

    def _take(self, batch: _Batch, number: int, raw: bytes | None) -> None:
        batch.count += 1
        batch.last_line = number
        if raw is None:
            reason = f"line longer than {self.options.max_line_bytes} bytes"
            batch.bad.append(ledger.Quarantined(number, reason, None))
            return
        try:
            line = parse_line(raw, self.default_store)
        except LineError as exc:
            batch.bad.append(ledger.Quarantined(number, exc.reason, raw))
            return
        if line is None:
            batch.skipped += 1
            return
        if line.barcode_error is not None:
            reason = f"barcode rejected ({line.barcode_error}); line imported without it"
            batch.bad.append(ledger.Quarantined(number, reason, raw, imported=True))
        batch.lines.append((number, line))

    def _commit(self, batch: _Batch) -> None:
        source = self.claimed.original_name
        stats = BatchStats()

        def work(session: Session) -> None:
            nonlocal stats
            stats = apply_lines(session, batch.lines, source=source, default_seen=self.default_seen)
            ledger.record_batch(
                session,
                self.file_id,
                lines_done=batch.last_line,
                imported=len(batch.lines),
                skipped=batch.skipped,
                quarantined=batch.bad,
            )

        _retrying(self.engine, self.options.retries, work)
        self.report.stats.add(stats)
        self.report.lines += batch.count
        self.progress(batch.count)

    def _write_quarantine(self, inbox: Inbox) -> Path | None:
        """Write the file's quarantine records (from the ledger, so a re-run rewrites, never
        duplicates them); atomically, and only if there are any."""
        target = inbox.quarantine_path(self.claimed)
        factory = session_factory(self.engine)
        temp = target.with_suffix(".part")
        count = 0
        target.parent.mkdir(parents=True, exist_ok=True)
        with factory() as session, temp.open("wb") as out:
            for row in ledger.quarantined_lines(session, self.file_id):
                count += 1
                record = {
                    "file": self.claimed.original_name,
                    "archived_as": self.claimed.claim_name,
                    "line": row.line_no,
                    "reason": row.reason,
                    "imported": row.imported,
                    "raw": row.raw,
                }
                out.write(orjson.dumps(record) + b"\n")
        if not count:
            temp.unlink()
            return None
        os.replace(temp, target)
        return target


def import_file(
    engine: Engine,
    inbox: Inbox,
    claimed: ClaimedFile,
    options: ImportOptions | None = None,
    progress: Progress | None = None,
) -> FileReport:
    """Import one claimed file to the end, resuming after its last committed batch."""
    try:
        return _FileImport(
            engine, claimed, options or ImportOptions(), progress or (lambda _: None)
        ).run(inbox)
    finally:
        claimed.release()
