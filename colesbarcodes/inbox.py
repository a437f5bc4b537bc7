"""Inbox folders of JSON-lines files, claimed atomically by one worker at a time.

A file is taken by renaming it into the inbox's ``processing/`` folder while holding an
exclusive ``flock`` on it. The lock, not the folder, says who owns the file: the kernel
drops it when the owner dies, so a file left in ``processing/`` by a killed worker is
taken up again by the next run, while a live worker's file is never touched. Writers
must create files under another name (e.g. ``.jsonl.part``) and rename them to ``.jsonl``
when complete: only ``*.jsonl`` files are taken.
"""

from __future__ import annotations

import fcntl
import logging
import os
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["ClaimedFile", "Inbox", "iter_lines"]

logger = logging.getLogger(__name__)

PATTERN = "*.jsonl"
_SEPARATOR = "--"


@dataclass
class ClaimedFile:
    """A file this process owns until :meth:`Inbox.finish` or :meth:`release`."""

    path: Path
    original_name: str
    resumed: bool
    _fd: int = field(repr=False)

    @property
    def claim_name(self) -> str:
        return self.path.name

    @property
    def size(self) -> int:
        return os.fstat(self._fd).st_size

    @property
    def mtime(self) -> datetime:
        return datetime.fromtimestamp(os.fstat(self._fd).st_mtime, UTC)

    def open(self) -> BinaryIO:
        return self.path.open("rb")

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing drops the flock
            self._fd = -1


def _lock(path: Path) -> int | None:
    """Open and exclusively lock ``path``; ``None`` if it is gone or owned by someone else."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # The path may have been renamed away between open() and flock(): make sure the
        # locked inode is still the one the path names.
        if os.stat(path, follow_symlinks=False).st_ino != os.fstat(fd).st_ino:
            raise FileNotFoundError(path)
    except OSError:
        os.close(fd)
        return None
    return fd


def original_name(claim_name: str) -> str:
    """The name a file had in the inbox before it was claimed."""
    return claim_name.split(_SEPARATOR, 1)[1] if _SEPARATOR in claim_name else claim_name


class Inbox:
    """One inbox folder with its ``processing/``, ``archive/`` and ``quarantine/`` areas."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.processing = self.root / "processing"
        self.archive = self.root / "archive"
        self.quarantine = self.root / "quarantine"

    def ensure(self) -> None:
        for folder in (self.root, self.processing, self.archive, self.quarantine):
            folder.mkdir(parents=True, exist_ok=True)

    def _files(self, folder: Path) -> list[Path]:
        found = []
        for path in folder.glob(PATTERN):
            if path.is_symlink():
                logger.warning("Ignoring symlink %s: inbox files must be regular files", path)
                continue
            if path.is_file():
                found.append(path)
        return sorted(found, key=lambda p: (p.stat().st_mtime, p.name))

    def pending(self) -> list[Path]:
        """Files waiting in the inbox, oldest first (not counting abandoned claims)."""
        return self._files(self.root) if self.root.is_dir() else []

    def abandoned(self) -> list[Path]:
        """Files in ``processing/`` whose owner has died (nobody holds their lock)."""
        if not self.processing.is_dir():
            return []
        result = []
        for path in self._files(self.processing):
            fd = _lock(path)
            if fd is not None:
                os.close(fd)
                result.append(path)
        return result

    def has_work(self) -> bool:
        return bool(self.pending()) or bool(self.abandoned())

    def claim_next(
        self, only: set[str] | None = None, exclude: set[str] | None = None
    ) -> ClaimedFile | None:
        """Take the next file: an abandoned claim first (to finish it), else the oldest new one.

        ``only`` restricts the choice to these file names (a cycle's snapshot of the inbox);
        ``exclude`` leaves out new files of these names (e.g. retry files a crawl just wrote).
        """
        self.ensure()
        for path in self._files(self.processing):
            if only is not None and path.name not in only:
                continue
            fd = _lock(path)
            if fd is not None:
                logger.info("Resuming %s, left unfinished by an earlier run", path.name)
                return ClaimedFile(path, original_name(path.name), True, fd)
        for path in self._files(self.root):
            if (only is not None and path.name not in only) or (exclude and path.name in exclude):
                continue
            fd = _lock(path)
            if fd is None:
                continue
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
            target = self.processing / f"{stamp}-{uuid.uuid4().hex[:8]}{_SEPARATOR}{path.name}"
            try:
                path.rename(target)
            except FileNotFoundError:
                os.close(fd)
                continue
            return ClaimedFile(target, path.name, False, fd)
        return None

    def finish(self, claimed: ClaimedFile, *, keep: bool = True) -> Path | None:
        """Archive (or delete) a fully processed file, then drop its lock."""
        try:
            if keep:
                self.archive.mkdir(parents=True, exist_ok=True)
                target = self.archive / claimed.claim_name
                claimed.path.rename(target)
                return target
            claimed.path.unlink()
            return None
        finally:
            claimed.release()

    def quarantine_path(self, claimed: ClaimedFile) -> Path:
        return self.quarantine / f"{claimed.claim_name}.quarantine.jsonl"


_READ_SIZE = 1 << 20


def iter_lines(
    stream: BinaryIO, max_bytes: int, block_size: int = _READ_SIZE
) -> Iterator[tuple[int, bytes | None]]:
    """Numbered lines of a stream, reading at most ``max_bytes`` of any line into memory.

    A longer line is yielded as ``None`` (after skipping the rest of it) so the caller can
    quarantine it without ever holding it whole. Blank lines are skipped. The stream is
    read in large blocks and split in C: reading line by line cost more than parsing.
    """
    number = 0
    pending = b""  # the start of a line whose end is not read yet
    too_long = False  # the pending line is longer than max_bytes: its bytes are dropped
    while block := stream.read(block_size):
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
            if piece.strip():
                yield number, piece + b"\n"
        if not too_long:
            pending += tail
            if len(pending) > max_bytes:
                pending, too_long = b"", True
    if pending or too_long:
        number += 1
        if too_long or len(pending) > max_bytes:
            yield number, None
        elif pending.strip():
            yield number, pending
