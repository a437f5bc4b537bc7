"""A product file's lines, read on demand and parsed into what a batch needs (pure: no
database): the good lines, the bad ones for the quarantine, the skipped rows by reason."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from colesbarcodes.db import imported_files
from colesbarcodes.inbox.lines import LineError, LineRows, ProductLine

if TYPE_CHECKING:
    from collections.abc import Iterator

    from colesbarcodes.inbox.line_reader import LineReader

__all__ = ["PARSE_CHUNK_BYTES", "LineParser", "LineSource", "ParsedLines"]

# At most this many bytes of lines are taken at a time: a part of long lines is read in
# fewer lines.
PARSE_CHUNK_BYTES = 16 << 20
# The start of a bad line kept for the quarantine (as much as the record keeps).
RAW_KEEP = 10_000
MAX_ROWS_REASON = 1000  # characters of the reason of a line of several rows


@dataclass
class ParsedLines:
    """Lines of one file parsed: the good ones, the bad ones, the skipped rows."""

    lines: list[tuple[int, ProductLine]] = field(default_factory=list)
    bad: list[imported_files.Quarantined] = field(default_factory=list)
    bad_bytes: int = 0  # of the bad lines kept for the quarantine
    skipped: int = 0
    skipped_by_reason: Counter[str] = field(default_factory=Counter)
    count: int = 0  # lines read, good or bad
    last_line: int = 0


class LineSource:
    """The numbered lines of a file after its committed ones, read on demand."""

    def __init__(self, lines: Iterator[tuple[int, bytes | None]], lines_done: int) -> None:
        self._lines = lines
        self.position = lines_done  # the number of the last line taken (or done before)
        self.exhausted = False

    def take(
        self, count: int, max_bytes: int = PARSE_CHUNK_BYTES
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
class LineParser:
    """Parses a file's lines into the parts of batches (pure: no database)."""

    reader: LineReader
    max_line_bytes: int

    def parse(self, part: ParsedLines, raw_lines: list[tuple[int, bytes | None]]) -> None:
        """Parse the next lines of the part's file into it: good ones, bad ones, skipped rows."""
        lines, bad, read = part.lines, part.bad, self.reader.read
        for number, raw in raw_lines:
            if raw is None:
                reason = f"line longer than {self.max_line_bytes} bytes"
                bad.append(imported_files.Quarantined(number, reason, None))
                continue
            try:
                line = read(raw)
            except LineError as exc:
                kept = raw[:RAW_KEEP]
                part.bad_bytes += len(kept)
                bad.append(imported_files.Quarantined(number, exc.reason, kept))
                continue
            if line.__class__ is not ProductLine:
                self._rows(part, number, raw, line)  # type: ignore[arg-type]
                continue
            if line.barcode_error is not None:
                reason = f"barcode rejected ({line.barcode_error}); line imported without it"
                kept = raw[:RAW_KEEP]
                part.bad_bytes += len(kept)
                bad.append(imported_files.Quarantined(number, reason, kept, imported=True))
            lines.append((number, line))
        if raw_lines:
            part.count += len(raw_lines)
            part.last_line = raw_lines[-1][0]

    @staticmethod
    def _rows(part: ParsedLines, number: int, raw: bytes, rows: LineRows) -> None:
        """A line that is not one product: skipped rows are counted by reason; the product
        lines of a line of several rows are imported, and the rows that could not be read
        (or lost their barcode) are quarantined together as the line, by their place."""
        if rows.skipped:
            part.skipped += len(rows.skipped)
            part.skipped_by_reason.update(rows.skipped)
        notes = list(rows.errors)
        for place, line in rows.lines:
            if line.barcode_error is not None:
                notes.append(f"{place}: barcode rejected ({line.barcode_error}), row imported")
            part.lines.append((number, line))
        if not notes:
            return
        if rows.errors:
            total = len(rows.lines) + len(rows.skipped) + len(rows.errors)
            head = f"{len(rows.errors)} of {total} rows not imported"
            head += ", the others were" if rows.lines else ""
        else:
            head = "rows imported without their barcode"
        reason = f"{head}: {'; '.join(notes)}"
        if len(reason) > MAX_ROWS_REASON:
            reason = reason[: MAX_ROWS_REASON - 1] + "…"
        kept = raw[:RAW_KEEP]
        part.bad_bytes += len(kept)
        part.bad.append(
            imported_files.Quarantined(
                number,
                reason,
                kept,
                imported=bool(rows.lines),
                partly=bool(rows.errors and rows.lines),
            )
        )
