"""Importing product inbox files: claim, stream, batch, commit, archive.

A file moves ``inbox → processing/ → archive/``. Each batch of lines is applied and the
record (``imported_files``) of each file in it advanced in one transaction, so a crash
anywhere loses nothing and re-running resumes after the last committed batch; a batch may
end one file and begin the next (:class:`CycleImport`). Bad lines go to the quarantine file
(``quarantine/<file>.quarantine.jsonl``) with their line number and reason; the rest of
the file is imported. Transient database errors (deadlocks, serialization failures,
a concurrent writer taking the same new barcode, a dropped connection) retry the batch.

A batch's lines are parsed inside its transaction, a thousand at a time, and the database
is asked about each thousand's SKUs while the next thousand is parsed
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
from colesbarcodes.inbox.reading import iter_lines
from loaders.line_count import estimated_lines
from loaders.line_parsing import LineParser, LineSource, ParsedLines

if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import datetime
    from pathlib import Path
    from typing import BinaryIO

    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session

    from colesbarcodes.inbox.claims import ClaimedFile, Inbox
    from colesbarcodes.inbox.lines import ProductLine

__all__ = ["CycleImport", "FileDone", "FileReport", "ImportOptions", "import_files"]

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


LinesDone = Callable[[int], None]  # told how many more lines a batch has had applied


@dataclass(kw_only=True)
class _Part(ParsedLines):
    """A file's lines in one batch."""

    file: _File
    source: LineSource  # the file's lines not read yet
    ends: bool = False  # the file's last lines are in it (the next batch may read on)


@dataclass
class _Batch:
    """The lines one transaction applies: a part of one file, or the end of a file and the
    start of the files after it (see :class:`CycleImport`)."""

    size: int  # the most lines it takes
    parts: list[_Part] = field(default_factory=list)
    count: int = 0  # lines read, good or bad, of all its parts
    filled: bool = False  # all its lines are read: the batch is full or the files ended

    def lines(self) -> list[tuple[int, ProductLine]]:
        if len(self.parts) == 1:
            return self.parts[0].lines
        return [line for part in self.parts for line in part.lines]


# Lines parsed between two reads ahead of the database (see BatchReader).
_PARSE_CHUNK = 1000
# Lines parsed ahead at a time while the database stores a batch (about a millisecond's
# work: the client looks again soon after the database is done).
_PARSE_AHEAD_STEP = 100
# A file's first batch, when nothing overlaps its parse, is this share of a batch (see
# first_batch_size).
FIRST_BATCH_SHARE = 4
# How many bytes of bad lines kept for the quarantine a batch gathers before it is
# committed early: a file of long bad lines never holds more than that in memory.
_BAD_BYTES_PER_BATCH = 32 << 20


def first_batch_size(
    path: Path, size: int, lines_done: int, batch_size: int, *, files_follow: bool = False
) -> int | None:
    """The size of a batch that nothing overlaps the parse of, beginning at the file at
    ``path`` (``size`` bytes, ``lines_done`` of its lines done before); ``None`` for the
    batch size. ``files_follow``: other files of the cycle come after it.

    A batch is parsed while the database stores the one before it, but the first batch of
    a cycle (or of a resumed file) has nothing before it: the database waits idle until it
    is parsed. When more than a batch lies ahead (the file holds more than a batch, or
    other files follow it, which the batch goes on with), it is a quarter of one, so that
    the database starts storing four times as soon (a listing file of 210,000 lines at the
    default size: the command ~13 % sooner, in as many batches as before). A file whose
    last batch would be more than three quarters full gets one batch more, which reads the
    catalogue once more (~0.1 s for 30,000 SKUs against the ~0.5 s gained). A lone file of
    a batch or less stays one batch: split, its second batch would read the catalogue
    again for the few lines left. The file's lines are estimated from the newlines in its
    first MiB (:func:`estimated_lines`).
    """
    first = max(batch_size // FIRST_BATCH_SHARE, _PARSE_CHUNK)
    if first >= batch_size:
        return None
    if files_follow:
        return first
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


@dataclass
class _File:
    """A claimed file of the cycle: where its lines are read from, and its report."""

    claimed: ClaimedFile
    report: FileReport
    parser: LineParser
    started: float  # when it was claimed (monotonic)
    default_seen: datetime  # the observation time of its lines without ``scraped_at``
    stream: BinaryIO | None = None
    # its record's id: a resumed claim's is read before its lines are; a fresh claim has
    # none until the transaction of its first batch creates it
    file_id: int | None = None

    @property
    def name(self) -> str:
        return self.claimed.original_name

    def open(self, lines_done: int, max_line_bytes: int) -> LineSource:
        """Its lines after the first ``lines_done``."""
        self.stream = self.claimed.open()
        return LineSource(iter_lines(self.stream, max_line_bytes), lines_done)

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None

    def record(self, session: Session) -> imported_files.FileProgress:
        """Its record in ``imported_files``, created on first sight."""
        return imported_files.open_file(
            session, INBOX_NAME, self.claimed.claim_name, self.claimed.original_name
        )


FileDone = Callable[[FileReport], None]  # told of each file imported, in the cycle's order


class CycleImport:
    """Imports a cycle's files, batch after batch; a batch may span files.

    Files are claimed one after the other (abandoned claims first) and read as one stream
    of lines cut into batches: when a file ends before its batch is full, the batch goes on
    with the next file, so that a day of small files (a store's day, ~29,000 lines) pays a
    batch's fixed work (a catalogue read, a rewrite of each product renamed in it, a commit)
    once per batch, not once per file. The transaction of a batch applies the lines of
    every file in it and advances each file's record (``imported_files``), creating the
    record of a file that begins in it: a stop anywhere resumes each file after its last
    committed line, as with one file a batch. A file whose lines are all committed is
    finished (quarantine file written, record marked done, file archived) right after the
    batch's commit, and reported to ``on_file``.

    A file resumed from an earlier run never joins a batch: where it resumes is read from
    its record before its lines are, so it begins a batch of its own. A batch's changes
    (new products, merges, conflicts, price rows) are counted in the report of its first
    file.

    Each batch is parsed while the database stores the one before it (the batch's side
    work, see :class:`~colesbarcodes.db.catalog.BatchReader`), claiming the next files as
    it reaches them; a claim made ahead is an ordinary claim, resumed by the next run should
    this one stop before its lines are committed.
    """

    def __init__(
        self,
        engine: Engine,
        inbox: Inbox,
        names: set[str],
        options: ImportOptions,
        progress: LinesDone,
        on_file: FileDone,
    ) -> None:
        self.engine = engine
        self.inbox = inbox
        self.options = options
        self.progress = progress
        self.on_file = on_file
        self._names = names  # the files the cycle may claim (its snapshot of the inbox)
        self._no_more = False
        self._waiting: ClaimedFile | None = None  # a resumed claim that begins a batch
        self._files: list[_File] = []  # claimed and not finished yet
        self._next: _Batch | None = None  # the batch after the one being applied

    def run(self) -> None:
        """Import the files to the end; :meth:`close` afterwards, even on failure."""
        with _collector_tuned_for(self.options.batch_size):
            self._import()

    def _import(self) -> None:
        """(A method of its own so that the batches are gone when the collector is set
        back.)"""
        batch: _Batch | None = None
        while True:
            if batch is None or not batch.parts:
                batch = self._begin_batch()
                if batch is None:
                    return
            for part, file_id in zip(batch.parts, self._commit(batch), strict=True):
                if part.ends:
                    self._finish(part.file, file_id)
            batch, self._next = self._next, None

    def close(self) -> None:
        """Let go of the files claimed and not finished (the cycle failed): each stays in
        ``processing/`` for the next run, which resumes it after its last committed line."""
        for file in self._files:
            file.close()
            file.claimed.release()
        self._files.clear()
        if self._waiting is not None:
            self._waiting.release()
            self._waiting = None

    def _claim(self) -> ClaimedFile | None:
        if self._no_more:
            return None
        claimed = self.inbox.claim_next(only=self._names)
        if claimed is None:
            self._no_more = True
        else:
            self._names.discard(claimed.path.name)
            self._names.discard(claimed.original_name)
        return claimed

    def _take(self, claimed: ClaimedFile) -> _File:
        file = _File(
            claimed,
            FileReport(claimed.original_name),
            LineParser(LineReader(claimed.original_name), self.options.max_line_bytes),
            time.monotonic(),
            claimed.mtime,
        )
        self._files.append(file)
        return file

    def _begin_batch(self) -> _Batch | None:
        """A batch that nothing was parsed ahead of: of the resumed claim waiting, or of the
        next file; ``None`` when no file is left. A resumed file found done (its last batch
        committed before the stop) is finished on the way."""
        while True:
            claimed, self._waiting = self._waiting or self._claim(), None
            if claimed is None:
                return None
            file = self._take(claimed)
            lines_done = 0
            if claimed.resumed:
                record = with_retries(
                    self.engine,
                    file.record,
                    attempts=self.options.retries,
                    what="Opening the file's record",
                )
                file.file_id, lines_done = record.file_id, record.lines_done
                file.report.resumed_from = lines_done
                if record.done:
                    self._finish(file, record.file_id)
                    continue
            source = file.open(lines_done, self.options.max_line_bytes)
            size = first_batch_size(
                claimed.path,
                claimed.size,
                lines_done,
                self.options.batch_size,
                files_follow=bool(self._names) and not self._no_more,
            )
            batch = _Batch(size or self.options.batch_size)
            batch.parts.append(_Part(file=file, source=source, last_line=source.position))
            return batch

    def _joining(self) -> _Part | None:
        """The next file, opened to go on with a batch; ``None`` when none is left, or when
        the next is a resumed claim (it waits to begin a batch of its own)."""
        claimed = self._claim()
        if claimed is None:
            return None
        if claimed.resumed:
            self._waiting = claimed
            return None
        file = self._take(claimed)
        return _Part(file=file, source=file.open(0, self.options.max_line_bytes))

    def _following(self, batch: _Batch) -> _Batch:
        """The batch after ``batch`` (filled): the rest of its last file, or the next files."""
        following = _Batch(self.options.batch_size)
        last = batch.parts[-1]
        if not last.ends:
            following.parts.append(
                _Part(file=last.file, source=last.source, last_line=last.last_line)
            )
        return following

    def _fill(
        self, batch: _Batch, lines: int
    ) -> tuple[_Part | None, list[tuple[int, ProductLine]]]:
        """Parse up to ``lines`` more of the batch's lines, all of one file: the part they
        went to and its new good lines. A file that ends before the batch is full is
        followed by the next (see :meth:`_joining`)."""
        part = batch.parts[-1] if batch.parts else None
        if part is None or part.ends:
            joining = self._joining() if self._waiting is None else None
            if joining is None:
                batch.filled = True
                return part, []
            part = joining
            batch.parts.append(part)
        start, count = len(part.lines), part.count
        part.file.parser.parse(part, part.source.take(min(lines, batch.size - batch.count)))
        part.ends = part.source.exhausted
        batch.count += part.count - count
        batch.filled = batch.count >= batch.size or (
            sum(p.bad_bytes for p in batch.parts) >= _BAD_BYTES_PER_BATCH
        )
        return part, part.lines[start:]

    def _parse_ahead(self) -> bool:
        """Side work: parse a few of the next batch's lines while the database answers this
        one's questions or stores it."""
        upcoming = self._next
        if upcoming is None or upcoming.filled:
            return False
        self._fill(upcoming, _PARSE_AHEAD_STEP)
        return not upcoming.filled

    def _commit(self, batch: _Batch) -> list[int]:
        """Read the rest of the batch's lines and apply them, with each file's record;
        returns the records' ids, part by part.

        The lines are parsed in the batch's transaction, a thousand at a time, each part's
        SKUs asked about before the next is parsed. A retried batch keeps what it parsed and
        goes on from there.
        """
        stats = BatchStats()
        file_ids: list[int] = []

        def work(session: Session) -> None:
            nonlocal stats, file_ids
            reader = BatchReader(session, side_work=self._parse_ahead)
            with reader:  # its last answers are waited for with the side work
                if len(batch.parts) > 1:  # parsed ahead across files: plan for all of it
                    reader.plan(batch.lines())
                for part in batch.parts:
                    reader.read(part.lines, part.file.default_seen)
                while not batch.filled:
                    filled, lines = self._fill(batch, _PARSE_CHUNK)
                    if filled is not None and lines:
                        reader.read(lines, filled.file.default_seen)
                if self._next is None:
                    self._next = self._following(batch)
            stats = apply_lines(
                session,
                batch.lines(),
                source=[(part.file.name, len(part.lines)) for part in batch.parts],
                reader=reader,
                side_work=self._parse_ahead,
            )
            file_ids = []
            for part in batch.parts:
                file = part.file
                file_id = file.file_id
                if file_id is None:  # a fresh claim: its record begins with this batch
                    file_id = file.record(session).file_id
                imported_files.record_batch(
                    session,
                    file_id,
                    lines_done=part.last_line,
                    imported=len(part.lines),
                    skipped=part.skipped,
                    quarantined=part.bad,
                )
                file_ids.append(file_id)

        with_retries(self.engine, work, attempts=self.options.retries, what="A batch")
        batch.parts[0].file.report.stats.add(stats)
        for part, file_id in zip(batch.parts, file_ids, strict=True):
            file = part.file
            file.file_id = file_id
            file.report.lines += part.count
            file.report.skipped_by_reason.update(part.skipped_by_reason)
        self.progress(batch.count)
        return file_ids

    def _finish(self, file: _File, file_id: int) -> None:
        """Write the file's quarantine file, mark its record done, archive it, report it."""
        file.close()
        report = file.report
        report.unknown_fields = file.parser.reader.unknown_fields
        report.quarantine_file = with_retries(
            self.engine,
            lambda session: self._write_quarantine(file.claimed, file_id, session),
            attempts=self.options.retries,
            what="Writing the quarantine file",
        )

        def finish(session: Session) -> dict[str, int]:
            imported_files.finish(session, file_id)
            return imported_files.file_counts(session, file_id)

        counts = with_retries(
            self.engine, finish, attempts=self.options.retries, what="Finishing the file"
        )
        self._files.remove(file)
        self.inbox.finish(file.claimed, keep=self.options.archive)
        report.imported = counts["imported"]
        report.quarantined = counts["quarantined"]
        report.skipped = counts["skipped"]
        report.barcodes_rejected = counts["barcodes_rejected"]
        report.seconds = time.monotonic() - file.started
        self.on_file(report)

    def _write_quarantine(
        self, claimed: ClaimedFile, file_id: int, session: Session
    ) -> Path | None:
        """Write the file's quarantine records (from its record, so a re-run rewrites, never
        duplicates them); atomically, and only if there are any."""
        rows = session.execute(  # plain rows: ORM objects cost more than the file write
            select(
                QuarantinedLine.line_no,
                QuarantinedLine.reason,
                QuarantinedLine.imported,
                QuarantinedLine.raw,
            )
            .where(QuarantinedLine.file_id == file_id)
            .order_by(QuarantinedLine.line_no)
            .execution_options(yield_per=1000)
        )
        records = (
            {
                "file": claimed.original_name,
                "archived_as": claimed.claim_name,
                "line": row.line_no,
                "reason": row.reason,
                "imported": row.imported,
                "raw": row.raw,
            }
            for row in rows
        )
        target = self.inbox.quarantine_path(claimed)
        if not write_json_lines(target, records):
            target.unlink()  # nothing was quarantined: no file
            return None
        return target


def import_files(
    engine: Engine,
    inbox: Inbox,
    names: set[str],
    options: ImportOptions | None = None,
    progress: LinesDone | None = None,
    on_file: FileDone | None = None,
) -> None:
    """Import the inbox's files of these ``names`` (abandoned claims first, then the oldest
    new file), each to the end, resuming a file after its last committed batch."""
    cycle = CycleImport(
        engine,
        inbox,
        names,
        options or ImportOptions(),
        progress or (lambda _: None),
        on_file or (lambda _: None),
    )
    try:
        cycle.run()
    finally:
        cycle.close()
