"""A feed storage that writes ``<name>.part`` and renames it to ``<name>`` only when no
one said the feed is incomplete: the loader (which takes ``*.jsonl`` only) never sees a
partial file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from w3lib.url import file_uri_to_path

from colesbarcodes.signals import feed_incomplete, feed_published

if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Self

    from scrapy import Spider
    from scrapy.crawler import Crawler

__all__ = ["FEED_SCHEME", "AtomicFileFeedStorage", "FeedIncomplete"]


FEED_SCHEME = "atomicfile"


"""URI scheme of :class:`AtomicFileFeedStorage` (registered in ``FEED_STORAGES``)."""


class FeedIncomplete(Exception):
    """The feed was not published: its spider says it is incomplete (the file is deleted)."""


class AtomicFileFeedStorage:
    """A local file feed that appears under its name only when complete.

    ``atomicfile:///abs/path/name.jsonl``: items are written to ``name.jsonl.part``
    (created exclusively; if the name or its ``.part`` is taken, ``name-2.jsonl`` and so on).
    The feed is incomplete when the signal ``feed_incomplete`` named it before it closes
    (the listing spider sends it for a store whose walk is not complete). Complete: the
    file is flushed to disk and hard-linked to its name (never over an existing file), the
    ``.part`` removed, and ``feed_published`` sent. Incomplete: the ``.part`` is deleted
    and :class:`FeedIncomplete` raised, which the feed exporter logs as a feed it could not
    store. A crawl killed outright leaves only the ``.part``, which readers of ``*.jsonl``
    ignore.
    """

    def __init__(
        self,
        uri: str,
        *,
        feed_options: dict[str, Any] | None = None,
        crawler: Crawler | None = None,
    ) -> None:
        self.requested = Path(file_uri_to_path("file" + uri.removeprefix(FEED_SCHEME)))
        self.path, self.attempt = self.requested, 1  # the name taken (``-2``... if taken)
        self.part = self.path.with_name(self.path.name + ".part")
        self.feed_options = feed_options or {}
        self.crawler = crawler
        self.problem: str | None = None  # why it must not be published (``feed_incomplete``)
        if crawler is not None:
            crawler.signals.connect(self.incomplete, signal=feed_incomplete)

    @classmethod
    def from_crawler(
        cls, crawler: Crawler, uri: str, *, feed_options: dict[str, Any] | None = None
    ) -> Self:
        return cls(uri, feed_options=feed_options, crawler=crawler)

    def _candidate(self, attempt: int) -> Path:
        path = self.requested
        return path if attempt == 1 else path.with_name(f"{path.stem}-{attempt}{path.suffix}")

    def open(self, spider: Spider) -> IO[bytes]:
        """The ``.part`` file, created exclusively: a crawl started in the same second for
        the same name (two jobs) takes ``-2`` and so on instead of sharing it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, 1000):
            target = self._candidate(attempt)
            part = target.with_name(target.name + ".part")
            if target.exists():
                continue
            try:
                file = part.open("xb")
            except FileExistsError:
                continue
            self.path, self.part, self.attempt = target, part, attempt
            return file
        raise FileExistsError(f"no free name for {self.path}")

    def incomplete(self, options: Mapping[str, Any], problem: str) -> None:
        """``feed_incomplete``: remember the problem if it is about this feed."""
        if all(self.feed_options.get(name) == value for name, value in options.items()):
            self.problem = problem

    def store(self, file: IO[bytes]) -> None:
        file.flush()
        os.fsync(file.fileno())
        file.close()
        if self.crawler is not None:
            self.crawler.signals.disconnect(self.incomplete, signal=feed_incomplete)
        if self.problem:
            self.part.unlink(missing_ok=True)
            raise FeedIncomplete(f"{self.path.name} not published: {self.problem}")
        final = self._publish()
        if self.crawler is not None:
            self.crawler.signals.send_catch_log(
                feed_published, feed_options=self.feed_options, path=final
            )

    def _publish(self) -> Path:
        """Give the ``.part`` its final name without ever replacing an existing file."""
        for attempt in range(self.attempt, 1000):
            target = self._candidate(attempt)
            try:
                os.link(self.part, target)
            except FileExistsError:
                continue
            except OSError:  # no hard links on this file system: rename if the name is free
                if target.exists():
                    continue
                os.replace(self.part, target)
                return target
            self.part.unlink()
            return target
        raise FileExistsError(f"no free name for {self.path}")
