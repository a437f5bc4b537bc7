"""Importing product inbox files: claim, stream, batch, commit, archive.

A file moves ``inbox → processing/ → archive/``. Each batch of lines is applied and the
file's record (``imported_files``) advanced in one transaction, so a crash anywhere loses nothing and re-running
resumes after the last committed batch. Bad lines go to the quarantine file
(``quarantine/<file>.quarantine.jsonl``) with their line number and reason; the rest of
the file is imported. Transient database errors (deadlocks, serialization failures,
a concurrent writer taking the same new barcode, a dropped connection) retry the batch.

A batch's lines are parsed inside its transaction, a thousand at a time, and the database
is asked about each part's SKUs while the next part is parsed
(:class:`~colesbarcodes.db.catalog.BatchReader`): parsing and the database's reads overlap
without a second thread (which would have to share the interpreter lock with this one).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import select

from colesbarcodes.db import imported_files
from colesbarcodes.db.catalog import BatchReader, BatchStats, apply_lines
from colesbarcodes.db.engine import with_retries
from colesbarcodes.db.models import QuarantinedLine
from colesbarcodes.files import write_json_lines
from colesbarcodes.inbox.claims import ClaimedFile, Inbox, iter_lines
from colesbarcodes.inbox.lines import LineError, ProductLine, parse_line, store_from_filename

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
    batch_size: int = 50_000
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


LinesDone = Callable[[int], None]  # told how many more lines a file has had applied


def count_lines(path: Path) -> int:
    """Lines in a file, counted in 1 MiB blocks (for the progress bar's total); 0 for a
    file that is gone (another loader took it after the inbox was listed)."""
    total = 0
    try:
        with path.open("rb") as handle:
            while block := handle.read(1 << 20):
                total += block.count(b"\n")
    except FileNotFoundError:
        return 0
    return total


@dataclass
class _Batch:
    lines: list[tuple[int, ProductLine]] = field(default_factory=list)
    bad: list[imported_files.Quarantined] = field(default_factory=list)
    bad_bytes: int = 0  # of the bad lines kept for the quarantine
    skipped: int = 0
    count: int = 0  # lines read, good or bad
    last_line: int = 0
    filled: bool = False  # all its lines are read: the batch is full or the file ended


# Lines parsed between two reads ahead of the database (see BatchReader), and at most
# this many bytes of them: a part of long lines is read in fewer lines.
_PARSE_CHUNK = 1000
_PARSE_CHUNK_BYTES = 16 << 20
# The start of a bad line kept for the quarantine (as much as the record keeps), and how
# many such bytes a batch gathers before it is committed early: a file of long bad lines
# never holds more than that in memory.
_RAW_KEEP = 10_000
_BAD_BYTES_PER_BATCH = 32 << 20


class _Source:
    """The numbered lines of a file after its committed ones, read on demand."""

    def __init__(self, lines: Iterator[tuple[int, bytes | None]], lines_done: int) -> None:
        self._lines = lines
        self.position = lines_done  # the number of the last line taken (or done before)
        self.exhausted = False

    def take(
        self, count: int, max_bytes: int = _PARSE_CHUNK_BYTES
    ) -> list[tuple[int, bytes | None]]:
        """Up to ``count`` more lines, fewer when they add up to ``max_bytes``."""
        taken: list[tuple[int, bytes | None]] = []
        if count <= 0:
            return taken
        size = 0
        for number, raw in self._lines:
            if number <= self.position:
                continue
            taken.append((number, raw))
            if raw is not None:
                size += len(raw)
            if len(taken) >= count or size >= max_bytes:
                self.position = number
                return taken
        self.exhausted = True
        if taken:
            self.position = taken[-1][0]
        return taken


@dataclass
class _Parser:
    """Parses a file's lines into batches (pure: no database)."""

    default_store: str | None
    options: ImportOptions

    def parse(self, batch: _Batch, part: list[tuple[int, bytes | None]]) -> None:
        """Parse a part of the batch's lines into it: good ones, bad ones, skipped rows."""
        lines, bad, default_store = batch.lines, batch.bad, self.default_store
        for number, raw in part:
            if raw is None:
                reason = f"line longer than {self.options.max_line_bytes} bytes"
                bad.append(imported_files.Quarantined(number, reason, None))
                continue
            try:
                line = parse_line(raw, default_store)
            except LineError as exc:
                kept = raw[:_RAW_KEEP]
                batch.bad_bytes += len(kept)
                bad.append(imported_files.Quarantined(number, exc.reason, kept))
                continue
            if line is None:
                batch.skipped += 1
                continue
            if line.barcode_error is not None:
                reason = f"barcode rejected ({line.barcode_error}); line imported without it"
                kept = raw[:_RAW_KEEP]
                batch.bad_bytes += len(kept)
                bad.append(imported_files.Quarantined(number, reason, kept, imported=True))
            lines.append((number, line))
        if part:
            batch.count += len(part)
            batch.last_line = part[-1][0]

    def fill(self, batch: _Batch, source: _Source, lines: int) -> list[tuple[int, ProductLine]]:
        """Parse up to ``lines`` more of the batch's lines; returns the good ones."""
        start = len(batch.lines)
        self.parse(batch, source.take(min(lines, self.options.batch_size - batch.count)))
        batch.filled = (
            batch.count >= self.options.batch_size
            or source.exhausted
            or batch.bad_bytes >= _BAD_BYTES_PER_BATCH
        )
        return batch.lines[start:]


@contextlib.contextmanager
def _collector_tuned_for(batch_size: int) -> Iterator[None]:
    """Let the garbage collector skip the batches while a file is imported.

    The batches in flight (with their keys and prices) are hundreds of thousands of
    objects that live just long enough to be examined by every young collection and
    then by full ones: a seventh of the import's CPU, for no garbage (reference counting
    frees them). So while importing, a collection waits until far more objects are alive
    than a batch accounts for; reference cycles made meanwhile (a few hundred per batch)
    are still collected then, or after the file.
    """
    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(young, 50 * batch_size), middle, max(old, 1000))
    try:
        yield
    finally:
        gc.set_threshold(young, middle, old)


class _FileImport:
    def __init__(
        self, engine: Engine, claimed: ClaimedFile, options: ImportOptions, progress: LinesDone
    ) -> None:
        self.engine = engine
        self.claimed = claimed
        self.options = options
        self.progress = progress
        self.report = FileReport(claimed.original_name)
        self.parser = _Parser(store_from_filename(claimed.original_name), options)
        self.default_seen = claimed.mtime
        self.file_id = 0

    def run(self, inbox: Inbox) -> FileReport:
        started = time.monotonic()
        progress = with_retries(
            self.engine,
            lambda session: imported_files.open_file(
                session, INBOX_NAME, self.claimed.claim_name, self.claimed.original_name
            ),
            attempts=self.options.retries,
            what="Opening the file's record",
        )
        self.file_id = progress.file_id
        self.report.resumed_from = progress.lines_done
        if not progress.done:
            with _collector_tuned_for(self.options.batch_size):
                self._import_lines(progress.lines_done)
        self.report.quarantine_file = with_retries(
            self.engine,
            lambda session: self._write_quarantine(inbox, session),
            attempts=self.options.retries,
            what="Writing the quarantine file",
        )

        def finish(session: Session) -> dict[str, int]:
            imported_files.finish(session, self.file_id)
            return imported_files.file_counts(session, self.file_id)

        counts = with_retries(
            self.engine, finish, attempts=self.options.retries, what="Finishing the file"
        )
        inbox.finish(self.claimed, keep=self.options.archive)
        self.report.imported = counts["imported"]
        self.report.quarantined = counts["quarantined"]
        self.report.skipped = counts["skipped"]
        self.report.barcodes_rejected = counts["barcodes_rejected"]
        self.report.seconds = time.monotonic() - started
        return self.report

    def _import_lines(self, lines_done: int) -> None:
        """Import the lines after ``lines_done``, batch by batch. (A method of its own so
        that the batches are gone when the collector is set back.)"""
        with self.claimed.open() as stream:
            source = _Source(iter_lines(stream, self.options.max_line_bytes), lines_done)
            while True:  # the last batch may be empty: it records the end of the file
                self._commit(_Batch(last_line=source.position), source)
                if source.exhausted:
                    break

    def _commit(self, batch: _Batch, source: _Source) -> None:
        """Read the next batch of lines from ``source`` and apply it, with the file's record.

        The lines are parsed in the batch's transaction, part by part, each part's SKUs
        asked about before the next is parsed. A retried batch keeps what it parsed and
        goes on from there.
        """
        name = self.claimed.original_name
        stats = BatchStats()

        def work(session: Session) -> None:
            nonlocal stats
            reader = BatchReader(session, self.default_seen)
            with reader:
                reader.read(batch.lines)
                while not batch.filled:
                    reader.read(self.parser.fill(batch, source, _PARSE_CHUNK))
            stats = apply_lines(session, batch.lines, source=name, reader=reader)
            imported_files.record_batch(
                session,
                self.file_id,
                lines_done=batch.last_line,
                imported=len(batch.lines),
                skipped=batch.skipped,
                quarantined=batch.bad,
            )

        with_retries(self.engine, work, attempts=self.options.retries, what="A batch")
        self.report.stats.add(stats)
        self.report.lines += batch.count
        self.progress(batch.count)

    def _write_quarantine(self, inbox: Inbox, session: Session) -> Path | None:
        """Write the file's quarantine records (from its record, so a re-run rewrites, never
        duplicates them); atomically, and only if there are any."""
        rows = session.execute(  # plain rows: ORM objects cost more than the file write
            select(
                QuarantinedLine.line_no,
                QuarantinedLine.reason,
                QuarantinedLine.imported,
                QuarantinedLine.raw,
            )
            .where(QuarantinedLine.file_id == self.file_id)
            .order_by(QuarantinedLine.line_no)
            .execution_options(yield_per=1000)
        )
        records = (
            {
                "file": self.claimed.original_name,
                "archived_as": self.claimed.claim_name,
                "line": row.line_no,
                "reason": row.reason,
                "imported": row.imported,
                "raw": row.raw,
            }
            for row in rows
        )
        target = inbox.quarantine_path(self.claimed)
        if not write_json_lines(target, records):
            target.unlink()  # nothing was quarantined: no file
            return None
        return target


def import_file(
    engine: Engine,
    inbox: Inbox,
    claimed: ClaimedFile,
    options: ImportOptions | None = None,
    progress: LinesDone | None = None,
) -> FileReport:
    """Import one claimed file to the end, resuming after its last committed batch."""
    try:
        return _FileImport(
            engine, claimed, options or ImportOptions(), progress or (lambda _: None)
        ).run(inbox)
    finally:
        claimed.release()
