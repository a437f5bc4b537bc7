"""The lines of inbox files, counted or estimated without parsing them: the total of a
cycle's progress bar, and how large a file's first batch is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["LineTotal", "count_lines", "estimated_lines", "total_lines"]


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
