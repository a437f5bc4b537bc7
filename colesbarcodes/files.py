"""Files that appear whole or not at all: written under ``<name>.part``, renamed at the end.

The inboxes take ``*.jsonl`` only, so a reader never sees a half-written file; a writer
that fails leaves no file behind (the ``.part`` is removed).
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, BinaryIO

import orjson

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from pathlib import Path

__all__ = ["atomic_file", "write_json_lines"]


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """An open binary file that becomes ``path`` (atomically) when the block ends."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".part")
    try:
        with temp.open("wb") as out:
            yield out
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def write_json_lines(path: Path, rows: Iterable[object]) -> int:
    """Write one JSON value per line, atomically; returns the number of lines."""
    count = 0
    with atomic_file(path) as out:
        for row in rows:
            out.write(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE))
            count += 1
    return count
