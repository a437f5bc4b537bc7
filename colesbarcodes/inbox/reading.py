"""Reading an inbox file's lines: numbered, bounded in memory, fast.

Both inboxes' readers (the loader's importer and the barcode crawl's enrichment files) read
through :func:`iter_lines`; what a line means is :mod:`colesbarcodes.inbox.lines`' concern.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["iter_lines"]


_READ_SIZE = 1 << 20
_BOM = b"\xef\xbb\xbf"  # UTF-8's byte order mark, which some Windows tools write first


def iter_lines(
    stream: BinaryIO, max_bytes: int, block_size: int = _READ_SIZE
) -> Iterator[tuple[int, bytes | None]]:
    """Numbered lines of a stream, reading at most ``max_bytes`` of any line into memory.

    A longer line is yielded as ``None`` (after skipping the rest of it) so the caller can
    quarantine it without ever holding it whole. Blank lines are skipped, and so is a
    UTF-8 byte order mark at the start of the stream. The stream is read in large blocks
    and split in C: reading line by line cost more than parsing.
    """
    number = 0
    pending = b""  # the start of a line whose end is not read yet
    too_long = False  # the pending line is longer than max_bytes: its bytes are dropped
    head = stream.read(len(_BOM))
    block = (b"" if head == _BOM else head) + stream.read(block_size)
    while block:
        *complete, tail = block.split(b"\n")
        for piece in complete:
            number += 1
            if pending or too_long:
                piece, pending = pending + piece, b""
                if too_long or len(piece) > max_bytes:
                    too_long = False
                    yield number, None
                    continue
            elif len(piece) > max_bytes:
                yield number, None
                continue
            if piece and not piece.isspace():
                yield number, piece + b"\n"
        if not too_long:
            pending += tail
            if len(pending) > max_bytes:
                pending, too_long = b"", True
        block = stream.read(block_size)
    if pending or too_long:
        number += 1
        if too_long or len(pending) > max_bytes:
            yield number, None
        elif pending and not pending.isspace():
            yield number, pending
