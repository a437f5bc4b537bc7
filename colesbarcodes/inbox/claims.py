"""Inbox folders of JSON-lines files, claimed atomically by one worker at a time.

A file is taken by renaming it into the inbox's ``processing/`` folder while holding an
exclusive ``flock`` on it. The lock, not the folder, says who owns the file: the kernel
drops it when the owner dies, so a file left in ``processing/`` by a killed worker is
taken up again by the next run, while a live worker's file is never touched. Writers
must create files under another name (e.g. ``.jsonl.part``) and rename them to ``.jsonl``
when complete: only ``*.jsonl`` files are taken.

Only regular files are taken: symlinks (never followed, so nothing outside the inbox is
read or moved) and anything else that is not a regular file are left in place, with a
warning. A file is claimed under a name that is printable UTF-8 and short enough for the
claim's prefix and the quarantine file's suffix (see :func:`safe_name`), and it is read
through the claim's own descriptor, so a file removed from ``processing/`` meanwhile is
still read whole.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import stat
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

__all__ = ["ClaimedFile", "Inbox", "safe_name"]

logger = logging.getLogger(__name__)

PATTERN = "*.jsonl"
_SUFFIX = ".jsonl"
_SEPARATOR = "--"
# The most bytes of a file's own name in a claim name: the claim's prefix (26 bytes), the
# quarantine file's suffix (17) or a crawl's retry prefix (30) must still fit in the 255
# bytes a file name can have.
MAX_NAME_BYTES = 200


def printable_name(name: str) -> str:
    """A file name as printable UTF-8: bytes that are not UTF-8 and control characters
    (new lines, direction overrides) written as escapes (``\\xe9``, ``\\n``)."""
    text = os.fsencode(name).decode("utf-8", "backslashreplace")
    if text.isprintable():
        return text
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text
    )


def safe_name(name: str) -> str:
    """The name a file is claimed under: :func:`printable_name`, and when that is longer
    than ``MAX_NAME_BYTES``, its start, a hash of the whole name and its suffix."""
    text = printable_name(name)
    if len(text.encode()) <= MAX_NAME_BYTES:
        return text
    stem, suffix = (text[: -len(_SUFFIX)], _SUFFIX) if text.endswith(_SUFFIX) else (text, "")
    tail = f"~{hashlib.blake2s(os.fsencode(name), digest_size=4).hexdigest()}{suffix}"
    head = stem.encode()[: MAX_NAME_BYTES - len(tail)].decode("utf-8", "ignore")
    return head + tail


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
        """The file from its start, read through the claim's descriptor (one reader at a
        time): a file removed or renamed by someone else meanwhile is still read whole."""
        if self._fd < 0:
            return self.path.open("rb")
        stream = open(os.dup(self._fd), "rb")  # noqa: SIM115 - the caller closes it
        stream.seek(0)
        return stream

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # drops the flock (once no stream from open() is left open)
            self._fd = -1


def _lock(path: Path) -> int | None:
    """Open and exclusively lock ``path``; ``None`` if it is gone, owned by someone else,
    or no longer a regular file (never a symlink; a FIFO would block a plain open)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        opened = os.fstat(fd)
        if stat.S_ISREG(opened.st_mode):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # The path may have been renamed away between open() and flock(): make sure
            # the locked inode is still the one the path names.
            named = os.stat(path, follow_symlinks=False)
            if (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino):
                return fd
    except OSError:
        pass
    os.close(fd)
    return None


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
        self._left: set[Path] = set()  # entries left in place, each reported once

    def ensure(self) -> None:
        for folder in (self.root, self.processing, self.archive, self.quarantine):
            folder.mkdir(parents=True, exist_ok=True)

    def _files(self, folder: Path) -> list[Path]:
        """The regular ``*.jsonl`` files of ``folder``, oldest first."""
        found = []
        for path in folder.glob(PATTERN):
            try:
                info = path.lstat()
            except FileNotFoundError:
                continue  # taken or removed since the listing
            if stat.S_ISREG(info.st_mode):
                found.append((info.st_mtime, path.name, path))
            elif path not in self._left:
                self._left.add(path)
                what = "a symlink" if stat.S_ISLNK(info.st_mode) else "not a regular file"
                logger.warning(
                    "Leaving %s in place: it is %s, and only regular files are imported",
                    printable_name(str(path)),
                    what,
                )
        return [path for _, _, path in sorted(found)]

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
                logger.info(
                    "Resuming %s, left unfinished by an earlier run", printable_name(path.name)
                )
                path = self._storable(path)
                return ClaimedFile(path, original_name(path.name), True, fd)
        for path in self._files(self.root):
            if (only is not None and path.name not in only) or (exclude and path.name in exclude):
                continue
            fd = _lock(path)
            if fd is None:
                continue  # taken by another worker, or gone
            name = safe_name(path.name)
            if name != path.name:
                logger.warning(
                    "Claiming %s as %s: names are kept as printable UTF-8 of at most %d bytes",
                    printable_name(path.name),
                    name,
                    MAX_NAME_BYTES,
                )
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
            target = self.processing / f"{stamp}-{uuid.uuid4().hex[:8]}{_SEPARATOR}{name}"
            try:
                path.rename(target)
            except FileNotFoundError:
                os.close(fd)
                continue
            except OSError:
                os.close(fd)
                raise
            return ClaimedFile(target, name, False, fd)
        return None

    @staticmethod
    def _storable(path: Path) -> Path:
        """An abandoned claim under a name the ledger can store: claims made before names
        were made safe may hold bytes that are not UTF-8 (and so have no ledger entry yet).
        The caller holds the file's lock, which the rename keeps."""
        try:
            path.name.encode()
        except UnicodeEncodeError:
            prefix, separator, name = path.name.partition(_SEPARATOR)
            if not separator:
                prefix, name = "resumed", path.name
            target = path.with_name(f"{safe_name(prefix)}{_SEPARATOR}{safe_name(name)}")
            path.rename(target)
            logger.warning("Renamed the claim %s to %s", printable_name(path.name), target.name)
            return target
        return path

    def finish(self, claimed: ClaimedFile, *, keep: bool = True) -> Path | None:
        """Archive (or delete) a fully processed file, then drop its lock. A file someone
        else removed from ``processing/`` meanwhile (it was read whole all the same) has
        nothing left to archive: that is logged, not an error."""
        try:
            if keep:
                self.archive.mkdir(parents=True, exist_ok=True)
                target = self.archive / claimed.claim_name
                try:
                    claimed.path.rename(target)
                except FileNotFoundError:
                    logger.warning(
                        "%s was removed from %s while it was read: it was read whole, "
                        "but there is nothing left to archive",
                        claimed.claim_name,
                        self.processing,
                    )
                    return None
                return target
            claimed.path.unlink(missing_ok=True)
            return None
        finally:
            claimed.release()

    def quarantine_path(self, claimed: ClaimedFile) -> Path:
        return self.quarantine / f"{claimed.claim_name}.quarantine.jsonl"
