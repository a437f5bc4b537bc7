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
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import select

from colesbarcodes.db import imported_files
from colesbarcodes.db.catalog import BatchReader, BatchStats, apply_lines
from colesbarcodes.db.engine import with_retries
from colesbarcodes.db.models import QuarantinedLine
from colesbarcodes.files import write_json_lines
from colesbarcodes.inbox.line_reader import LineReader
from colesbarcodes.inbox.lines import LineError, LineRows, ProductLine
from colesbarcodes.inbox.reading import iter_lines

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path
    from typing import BinaryIO

    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session

    from colesbarcodes.inbox.claims import ClaimedFile, Inbox

__all__ = ["CycleFiles", "FileReport", "ImportOptions", "LineTotal", "import_file", "total_lines"]

logger = logging.getLogger(__name__)

INBOX_NAME = "products"


@dataclass
class ImportOptions:
    batch_size: int = 100_000  # the CLI's --batch-size default; see docs/product-update.md
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
    # Of the lines read in this run (a resumed file: those after resumed_from): skipped
    # rows by reason (ad, sponsored, marketplace), and the fields of canonical lines the
    # loader does not read, each with the field it probably meant.
    skipped_by_reason: Counter[str] = field(default_factory=Counter)
    unknown_fields: dict[str, str | None] = field(default_factory=dict)


LinesDone = Callable[[int], None]  # told how many more lines a file has had applied


EXACT_COUNT_BYTES = 16 << 20  # up to this much in all, the lines are counted exactly
SAMPLE_BYTES = 1 << 20  # beyond it, each file's lines are estimated from its first MiB


@dataclass(frozen=True)
class LineTotal:
    """The lines a cycle has to import, for the progress bar: counted, or estimated from
    the files' sizes when counting would read a large day twice (once here, once to
    import it)."""

    lines: int
    exact: bool

    def __str__(self) -> str:
        return f"{self.lines} lines" if self.exact else f"~{self.lines} lines (estimated)"


def count_lines(path: Path, limit: int | None = None) -> tuple[int, int]:
    """Newlines in a file and the bytes read, in 1 MiB blocks, up to ``limit`` bytes;
    (0, 0) for a file that is gone (another loader took it after the inbox was listed)."""
    total = read = 0
    try:
        with path.open("rb") as handle:
            while block := handle.read(1 << 20 if limit is None else min(1 << 20, limit - read)):
                total += block.count(b"\n")
                read += len(block)
    except FileNotFoundError:
        return 0, 0
    return total, read


def total_lines(
    paths: list[Path], exact_bytes: int = EXACT_COUNT_BYTES, sample_bytes: int = SAMPLE_BYTES
) -> LineTotal:
    """The lines in ``paths``: counted when they hold ``exact_bytes`` or less in all,
    else each file's newlines in its first ``sample_bytes`` scaled by its size."""
    sizes = []
    for path in paths:
        try:
            sizes.append(path.stat().st_size)
        except FileNotFoundError:
            sizes.append(0)
    if sum(sizes) <= exact_bytes:
        return LineTotal(sum(count_lines(p)[0] for p in paths), exact=True)
    lines = sum(
        estimated_lines(path, size, sample_bytes) for path, size in zip(paths, sizes, strict=True)
    )
    return LineTotal(lines, exact=False)


def estimated_lines(path: Path, size: int, sample_bytes: int = SAMPLE_BYTES) -> int:
    """The lines of a file of ``size`` bytes: its newlines in its first ``sample_bytes``,
    scaled by its size (counted, when the sample is the whole file)."""
    newlines, read = count_lines(path, sample_bytes)
    return newlines if read >= size else round(newlines * size / max(read, 1))


@dataclass
class _Batch:
    lines: list[tuple[int, ProductLine]] = field(default_factory=list)
    bad: list[imported_files.Quarantined] = field(default_factory=list)
    bad_bytes: int = 0  # of the bad lines kept for the quarantine
    skipped: int = 0
    skipped_by_reason: Counter[str] = field(default_factory=Counter)
    count: int = 0  # lines read, good or bad
    last_line: int = 0
    filled: bool = False  # all its lines are read: the batch is full or the file ended
    size: int | None = None  # the most lines it takes (None: the batch size)


# Lines parsed between two reads ahead of the database (see BatchReader), and at most
# this many bytes of them: a part of long lines is read in fewer lines.
_PARSE_CHUNK = 1000
# Lines parsed ahead at a time while the database stores a batch (about a millisecond's
# work: the client looks again soon after the database is done).
_PARSE_AHEAD_STEP = 100
_PARSE_CHUNK_BYTES = 16 << 20
# A file's first batch, when nothing overlaps its parse, is this share of a batch (see
# first_batch_size).
FIRST_BATCH_SHARE = 4
# The start of a bad line kept for the quarantine (as much as the record keeps), and how
# many such bytes a batch gathers before it is committed early: a file of long bad lines
# never holds more than that in memory.
_RAW_KEEP = 10_000
_MAX_ROWS_REASON = 1000  # characters of the reason of a line of several rows
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

    reader: LineReader
    options: ImportOptions

    def parse(self, batch: _Batch, part: list[tuple[int, bytes | None]]) -> None:
        """Parse a part of the batch's lines into it: good ones, bad ones, skipped rows."""
        lines, bad, read = batch.lines, batch.bad, self.reader.read
        for number, raw in part:
            if raw is None:
                reason = f"line longer than {self.options.max_line_bytes} bytes"
                bad.append(imported_files.Quarantined(number, reason, None))
                continue
            try:
                line = read(raw)
            except LineError as exc:
                kept = raw[:_RAW_KEEP]
                batch.bad_bytes += len(kept)
                bad.append(imported_files.Quarantined(number, exc.reason, kept))
                continue
            if line.__class__ is not ProductLine:
                self._rows(batch, number, raw, line)  # type: ignore[arg-type]
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

    @staticmethod
    def _rows(batch: _Batch, number: int, raw: bytes, rows: LineRows) -> None:
        """A line that is not one product: skipped rows are counted by reason; the product
        lines of a line of several rows are imported, and the rows that could not be read
        (or lost their barcode) are quarantined together as the line, by their place."""
        if rows.skipped:
            batch.skipped += len(rows.skipped)
            batch.skipped_by_reason.update(rows.skipped)
        notes = list(rows.errors)
        for place, line in rows.lines:
            if line.barcode_error is not None:
                notes.append(f"{place}: barcode rejected ({line.barcode_error}), row imported")
            batch.lines.append((number, line))
        if not notes:
            return
        if rows.errors:
            total = len(rows.lines) + len(rows.skipped) + len(rows.errors)
            head = f"{len(rows.errors)} of {total} rows not imported"
            head += ", the others were" if rows.lines else ""
        else:
            head = "rows imported without their barcode"
        reason = f"{head}: {'; '.join(notes)}"
        if len(reason) > _MAX_ROWS_REASON:
            reason = reason[: _MAX_ROWS_REASON - 1] + "…"
        kept = raw[:_RAW_KEEP]
        batch.bad_bytes += len(kept)
        batch.bad.append(
            imported_files.Quarantined(
                number,
                reason,
                kept,
                imported=bool(rows.lines),
                partly=bool(rows.errors and rows.lines),
            )
        )

    def fill(self, batch: _Batch, source: _Source, lines: int) -> list[tuple[int, ProductLine]]:
        """Parse up to ``lines`` more of the batch's lines; returns the good ones."""
        start = len(batch.lines)
        size = self.options.batch_size if batch.size is None else batch.size
        self.parse(batch, source.take(min(lines, size - batch.count)))
        batch.filled = (
            batch.count >= size or source.exhausted or batch.bad_bytes >= _BAD_BYTES_PER_BATCH
        )
        return batch.lines[start:]


def first_batch_size(path: Path, size: int, lines_done: int, batch_size: int) -> int | None:
    """The size of the first batch of the file at ``path`` (``size`` bytes, ``lines_done``
    of its lines done before) when nothing overlaps its parse, ``None`` for the batch size.

    A batch is parsed while the database stores the one before it, but the first batch of
    a cycle's first file (or of a resumed file) has nothing before it: the database waits
    idle until it is parsed. A file that holds more than a batch begins with a quarter of
    one, so that the database starts storing four times as soon (a listing file of 210,000
    lines at the default size: the command ~13 % sooner, in as many batches as before). A
    file whose last batch would be more than three quarters full gets one batch more, which
    reads the catalogue once more (~0.1 s for 30,000 SKUs against the ~0.5 s gained). A
    file of a batch or less stays one batch: split, its second batch would read the
    catalogue again for the few lines left. The file's lines are estimated from the
    newlines in its first MiB (:func:`estimated_lines`).
    """
    first = max(batch_size // FIRST_BATCH_SHARE, _PARSE_CHUNK)
    if first >= batch_size:
        return None
    return first if estimated_lines(path, size) - lines_done > batch_size else None


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
        self,
        engine: Engine,
        claimed: ClaimedFile,
        options: ImportOptions,
        progress: LinesDone,
        files: CycleFiles | None = None,
    ) -> None:
        self.files = files
        self.engine = engine
        self.claimed = claimed
        self.options = options
        self.progress = progress
        self.report = FileReport(claimed.original_name)
        self.parser = _Parser(LineReader(claimed.original_name), options)
        self.default_seen = claimed.mtime
        self.file_id = 0
        self._next: _Batch | None = None  # the batch after the one being applied

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
        started = self.files.started(self.claimed) if self.files is not None else None
        if started is not None and lines_done:  # not where it was parsed from: start over
            started.close()
            started = None
        if started is not None:
            stream, source, batch = started.stream, started.source, started.batch
            self.parser = started.parser  # it has read the first lines
        else:
            stream = self.claimed.open()
            source = _Source(iter_lines(stream, self.options.max_line_bytes), lines_done)
            batch = _Batch(
                last_line=source.position,
                size=first_batch_size(
                    self.claimed.path, self.claimed.size, lines_done, self.options.batch_size
                ),
            )
        with stream:
            upcoming: _Batch | None = batch
            while upcoming is not None:  # the last batch may be empty: it records the end
                self._commit(upcoming, source)
                upcoming, self._next = self._next, None

    def _commit(self, batch: _Batch, source: _Source) -> None:
        """Read the next batch of lines from ``source`` and apply it, with the file's record.

        The lines are parsed in the batch's transaction, part by part, each part's SKUs
        asked about before the next is parsed. A retried batch keeps what it parsed and
        goes on from there.
        """
        name = self.claimed.original_name
        stats = BatchStats()

        def parse_ahead() -> bool:
            """Parse a few of the next batch's lines (while the database answers this one's
            questions or stores it): of this file, or after its last batch, of the next file."""
            upcoming = self._next
            if upcoming is None:
                return self.files.parse_ahead() if self.files is not None else False
            if upcoming.filled:
                return False
            self.parser.fill(upcoming, source, _PARSE_AHEAD_STEP)
            return not upcoming.filled

        def work(session: Session) -> None:
            nonlocal stats
            reader = BatchReader(session, self.default_seen, side_work=parse_ahead)
            with reader:  # its last answers are waited for with the side work
                reader.read(batch.lines)
                while not batch.filled:
                    reader.read(self.parser.fill(batch, source, _PARSE_CHUNK))
                if self._next is None and not source.exhausted:
                    self._next = _Batch(last_line=source.position)
            stats = apply_lines(
                session, batch.lines, source=name, reader=reader, side_work=parse_ahead
            )
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
        self.report.skipped_by_reason.update(batch.skipped_by_reason)
        self.report.unknown_fields = self.parser.reader.unknown_fields
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
    files: CycleFiles | None = None,
) -> FileReport:
    """Import one claimed file to the end, resuming after its last committed batch.

    ``files``, the cycle the file was claimed from, lets the file's last batch parse the
    start of the cycle's next file while the database stores it.
    """
    try:
        return _FileImport(
            engine, claimed, options or ImportOptions(), progress or (lambda _: None), files
        ).run(inbox)
    finally:
        claimed.release()


@dataclass
class _StartedFile:
    """A file claimed ahead of its turn, with its first lines parsed."""

    claimed: ClaimedFile
    stream: BinaryIO
    source: _Source
    parser: _Parser
    batch: _Batch

    def close(self) -> None:
        self.stream.close()


class CycleFiles:
    """The files of one cycle, claimed one after the other.

    While the database stores a file's last batch, the loader has nothing else to do:
    :meth:`parse_ahead` (the batch's side work) claims the next file then and parses its
    first lines, which its import then starts from. A claim made ahead is an ordinary
    claim: should the loader stop before importing the file, the file stays in
    ``processing/`` and the next run resumes it from its first line. A file resumed from
    an earlier run is claimed ahead but not parsed (where it resumes is in the database).
    """

    def __init__(self, inbox: Inbox, names: set[str], options: ImportOptions) -> None:
        self.inbox = inbox
        self.options = options
        self._names = names  # the files the cycle may claim (its snapshot of the inbox)
        self._ahead: ClaimedFile | None = None
        self._started: _StartedFile | None = None
        self._no_more = False

    def claim_next(self) -> ClaimedFile | None:
        """The next file, claimed ahead already or now; ``None`` when none is left."""
        if self._ahead is None and self._started is not None:  # handed out, never begun
            self._started.close()
            self._started = None
        claimed, self._ahead = self._ahead, None
        return claimed if claimed is not None else self._claim()

    def _claim(self) -> ClaimedFile | None:
        claimed = self.inbox.claim_next(only=self._names)
        if claimed is None:
            self._no_more = True
        else:
            self._names.discard(claimed.path.name)
            self._names.discard(claimed.original_name)
        return claimed

    def parse_ahead(self) -> bool:
        """Side work: claim the next file and parse a few of its first lines."""
        if self._ahead is None:
            if self._no_more or self._started is not None:
                return False
            claimed = self._claim()
            if claimed is None:
                return False
            self._ahead = claimed
            if claimed.resumed:
                return False
            stream = claimed.open()
            parser = _Parser(LineReader(claimed.original_name), self.options)
            source = _Source(iter_lines(stream, self.options.max_line_bytes), 0)
            self._started = _StartedFile(claimed, stream, source, parser, _Batch())
        started = self._started
        if started is None or started.batch.filled:
            return False
        started.parser.fill(started.batch, started.source, _PARSE_AHEAD_STEP)
        return not started.batch.filled

    def started(self, claimed: ClaimedFile) -> _StartedFile | None:
        """The file's import as begun ahead (taken: its stream is the caller's to close)."""
        started = self._started
        if started is None or started.claimed is not claimed:
            return None
        self._started = None
        return started

    def close(self) -> None:
        """Let go of a file claimed ahead and never imported (the cycle failed)."""
        if self._started is not None:
            self._started.close()
            self._started = None
        if self._ahead is not None:
            self._ahead.release()
            self._ahead = None
