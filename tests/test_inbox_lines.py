"""Reading inbox files line by line: numbering, blank lines, and over-long lines."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from hypothesis import given, settings
from hypothesis import strategies as st

from colesbarcodes.inbox.reading import iter_lines

if TYPE_CHECKING:
    from collections.abc import Iterator


BOM = b"\xef\xbb\xbf"


def reference_lines(data: bytes, max_bytes: int) -> Iterator[tuple[int, bytes | None]]:
    """What the reader promises, written plainly over the whole input."""
    data = data.removeprefix(BOM)
    pieces = data.split(b"\n")
    ends_with_newline = data.endswith(b"\n")
    if ends_with_newline or not data:
        pieces.pop()
    for number, piece in enumerate(pieces, 1):
        last = number == len(pieces)
        if len(piece) > max_bytes:
            yield number, None
        elif piece.strip():
            yield number, piece if last and not ends_with_newline else piece + b"\n"


def test_lines_are_numbered_in_the_file_and_blank_ones_skipped() -> None:
    data = b'{"sku": 1}\n\n   \n{"sku": 2}\n{"sku": 3}'
    assert list(iter_lines(io.BytesIO(data), 100)) == [
        (1, b'{"sku": 1}\n'),
        (4, b'{"sku": 2}\n'),
        (5, b'{"sku": 3}'),
    ]


def test_a_line_longer_than_the_limit_is_reported_without_being_held() -> None:
    data = b"a" * 50 + b"\n" + b"b" * 5000 + b"\n" + b"c\n"
    lines = list(iter_lines(io.BytesIO(data), 100, block_size=64))
    assert lines == [(1, b"a" * 50 + b"\n"), (2, None), (3, b"c\n")]


def test_an_over_long_last_line_without_a_newline_is_reported() -> None:
    assert list(iter_lines(io.BytesIO(b"x\n" + b"y" * 300), 100, block_size=7)) == [
        (1, b"x\n"),
        (2, None),
    ]


def test_a_utf8_byte_order_mark_at_the_start_is_not_part_of_the_first_line() -> None:
    data = BOM + b'{"sku": 1}\r\n' + BOM + b'{"sku": 2}\r\n'
    for block_size in (1, 2, 3, 4, 1 << 20):
        assert list(iter_lines(io.BytesIO(data), 100, block_size=block_size)) == [
            (1, b'{"sku": 1}\r\n'),
            (2, BOM + b'{"sku": 2}\r\n'),  # only the stream's first bytes can be a mark
        ]


def test_a_stream_of_only_a_byte_order_mark_or_blank_lines_has_no_lines() -> None:
    for data in (b"", BOM, BOM + b"\n", b"\n\n \r\n\t\n"):
        assert list(iter_lines(io.BytesIO(data), 100, block_size=2)) == []


@settings(max_examples=300)
@given(
    data=st.lists(
        st.one_of(st.binary(max_size=40), st.sampled_from([b"\n", b"\n\n", b"  ", b"\r\n", BOM]))
    ).map(b"".join),
    max_bytes=st.integers(min_value=1, max_value=30),
    block_size=st.integers(min_value=1, max_value=50),
)
def test_block_reading_gives_the_same_lines_as_reading_the_whole_file(
    data: bytes, max_bytes: int, block_size: int
) -> None:
    got = list(iter_lines(io.BytesIO(data), max_bytes, block_size=block_size))
    assert got == list(reference_lines(data, max_bytes))
