"""Plumbing of the product-listing crawl (``scrapy crawl coles_products``).

* :class:`StoreWalk`: how far one store's walk through the listings got; it decides
  whether that store's file is complete.
* Feed exports, one feed per store and run: :func:`store_feeds` builds the ``FEEDS``
  entries, :class:`StoreItemFilter` routes each item to its store's feed, and
  :class:`AtomicFileFeedStorage` writes ``<name>.part`` and renames it to ``<name>`` only
  when the spider says the feed is complete, so the loader (which takes ``*.jsonl`` only)
  never sees a partial file.
* :func:`queue_missing_barcodes`: the optional enrichment file of SKUs without a barcode.

The site's shapes are parsed in :mod:`colesbarcodes.coles_site`, not here.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson
from itemadapter import ItemAdapter
from scrapy.exporters import JsonLinesItemExporter
from scrapy.extensions.feedexport import ItemFilter
from scrapy.logformatter import LogFormatter
from sqlalchemy.exc import SQLAlchemyError
from w3lib.url import file_uri_to_path

from colesbarcodes.db.engine import DATABASE_ERRORS, make_engine, redact, session_factory
from colesbarcodes.db.lookups import known_barcodes
from colesbarcodes.lines import LineError, normalize_store_id

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Self

    from scrapy import Spider
    from scrapy.crawler import Crawler

__all__ = [
    "FEED_SCHEME",
    "STORE_OPTION",
    "AtomicFileFeedStorage",
    "FeedIncomplete",
    "ListingLinesExporter",
    "QuietItemsLogFormatter",
    "StoreItemFilter",
    "StoreWalk",
    "parse_stores",
    "queue_missing_barcodes",
    "store_feeds",
    "store_file_name",
]

logger = logging.getLogger(__name__)

FEED_SCHEME = "atomicfile"
"""URI scheme of :class:`AtomicFileFeedStorage` (registered in ``FEED_STORAGES``)."""
STORE_OPTION = "coles_store_id"
"""Feed option naming the store whose items a feed takes."""
_STORE_RE = re.compile(r"^[0-9A-Za-z]{1,16}$")  # what the loader reads back from a file name
_DB_ERRORS: tuple[type[Exception], ...] = (SQLAlchemyError, *DATABASE_ERRORS)


@dataclass
class StoreWalk:
    """One store's walk through the listings: complete once every listing request issued
    for it has been answered and none failed (beyond the tolerance)."""

    store_id: str
    scheduled: bool = False  # the first request of every planned category was issued
    pending: int = 0  # listing requests issued and not answered yet
    failed: int = 0  # pages that gave nothing usable after retries
    truncated: list[str] = field(default_factory=list)  # too big to list, no sub-categories
    seen: set[int] = field(default_factory=set)  # SKUs already written for this store

    def problem(self, max_failed: int) -> str | None:
        """Why this store's file is not complete, or ``None`` when it is."""
        if not self.scheduled:
            return "the walk through the categories did not get going"
        if self.pending:
            return f"{self.pending} listing pages were never answered (the crawl stopped early)"
        lost = self.failed + len(self.truncated)
        if lost > max_failed:
            parts = []
            if self.failed:
                parts.append(f"{self.failed} listing pages failed")
            if self.truncated:
                parts.append(
                    f"{len(self.truncated)} categories exceed the page cap with no "
                    f"sub-categories ({', '.join(self.truncated[:5])})"
                )
            return f"{' and '.join(parts)} (COLES_LISTING_MAX_FAILED_PAGES={max_failed})"
        return None


def parse_stores(value: str | Iterable[str]) -> list[str]:
    """Store ids from ``0584,0601`` (commas or spaces; Coles ids zero-padded to 4 digits),
    in order, without repeats. Raises ValueError for an id a file name cannot carry."""
    tokens = re.split(r"[,\s]+", value) if isinstance(value, str) else list(value)
    stores: list[str] = []
    for token in tokens:
        if not str(token).strip():
            continue
        try:
            store = normalize_store_id("coles", str(token).strip())
        except LineError as exc:
            raise ValueError(exc.reason) from None
        if store is None or not _STORE_RE.match(store):
            raise ValueError(f"bad store id {token!r}: letters and digits only, at most 16")
        if store not in stores:
            stores.append(store)
    if not stores:
        raise ValueError("no store given")
    return stores


def store_file_name(store_id: str, stamp: str) -> str:
    """``coles_store-0584_20261124T060000Z.jsonl``: the loader takes the store from the name."""
    return f"coles_store-{store_id}_{stamp}.jsonl"


def store_feeds(stores: Iterable[str], inbox: Path, stamp: str) -> dict[str, dict[str, Any]]:
    """``FEEDS`` entries: one JSON-lines file per store in ``inbox``, published atomically."""
    feeds: dict[str, dict[str, Any]] = {}
    for store in stores:
        uri = (inbox.resolve() / store_file_name(store, stamp)).as_uri()
        feeds[FEED_SCHEME + uri.removeprefix("file")] = {
            "format": "coles_jsonl",
            "encoding": "utf-8",
            "store_empty": False,  # a store that listed nothing gets no file
            "item_filter": StoreItemFilter,
            STORE_OPTION: store,
        }
    return feeds


class StoreItemFilter(ItemFilter):
    """Lets into a feed only the items of its store (feed option ``coles_store_id``)."""

    def __init__(self, feed_options: dict[str, Any] | None) -> None:
        super().__init__(feed_options)
        self.store_id = (feed_options or {}).get(STORE_OPTION)

    def accepts(self, item: Any) -> bool:
        if isinstance(item, dict):
            return bool(item.get("store_id") == self.store_id)
        return bool(ItemAdapter(item).get("store_id") == self.store_id)


class FeedIncomplete(Exception):
    """The feed was not published: its spider says it is incomplete (the file is deleted)."""


class AtomicFileFeedStorage:
    """A local file feed that appears under its name only when complete.

    ``atomicfile:///abs/path/name.jsonl``: items are written to ``name.jsonl.part``
    (created exclusively; if the name or its ``.part`` is taken, ``name-2.jsonl`` and so on);
    when the feed closes, the spider is asked ``feed_problem(feed_options)`` (spiders without
    that method: always complete). Complete: the file is flushed to disk and hard-linked
    to its name (never over an existing file), then the ``.part`` removed. Incomplete: the ``.part`` is deleted and :class:`FeedIncomplete`
    raised, which the feed exporter logs as a feed it could not store. A crawl killed
    outright leaves only the ``.part``, which readers of ``*.jsonl`` ignore.
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

    def _spider(self) -> Any:
        return self.crawler.spider if self.crawler is not None else None

    def store(self, file: IO[bytes]) -> None:
        file.flush()
        os.fsync(file.fileno())
        file.close()
        check = getattr(self._spider(), "feed_problem", None)
        problem = check(self.feed_options) if callable(check) else None
        if problem:
            self.part.unlink(missing_ok=True)
            raise FeedIncomplete(f"{self.path.name} not published: {problem}")
        final = self._publish()
        published = getattr(self._spider(), "feed_published", None)
        if callable(published):
            published(self.feed_options, final)

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


def queue_missing_barcodes(
    database_url: str, inbox: Path, skus: Mapping[int, str], stamp: str
) -> tuple[Path | None, int]:
    """Write the SKUs whose barcode the database does not know into the barcode-enrichment
    inbox as one file ``listing-coles-<stamp>.jsonl`` (lines ``{"company", "sku",
    "store_id"}``); ``skus`` maps each SKU to a store that lists it. (file, SKUs queued).

    If the database cannot be asked, every SKU is queued: the barcode crawl's prefill skips
    the known ones anyway, so this only costs a bigger file.
    """
    known: dict[str, str] = {}
    try:
        engine = make_engine(database_url)
        try:
            with session_factory(engine)() as session:
                known = known_barcodes(session, "coles", [str(sku) for sku in skus])
        finally:
            engine.dispose()
    except _DB_ERRORS as exc:
        detail = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        logger.warning(
            "Could not ask %s for known barcodes (%s): queueing every SKU",
            redact(database_url),
            detail,
        )
    missing = [(sku, store) for sku, store in skus.items() if str(sku) not in known]
    if not missing:
        return None, 0
    inbox.mkdir(parents=True, exist_ok=True)
    target = inbox / f"listing-coles-{stamp}.jsonl"
    temp = target.with_name(target.name + ".part")  # the barcode crawl takes *.jsonl only
    with temp.open("wb") as out:
        for sku, store in missing:
            out.write(orjson.dumps({"company": "coles", "sku": sku, "store_id": store}) + b"\n")
    os.replace(temp, target)
    return target, len(missing)


class ListingLinesExporter(JsonLinesItemExporter):
    """JSON lines written with orjson (the listing crawl writes some 30,000 lines a store):
    plain dict items without field selection take the fast path, anything else is left
    to Scrapy's exporter. Feed format ``coles_jsonl`` (``FEED_EXPORTERS``)."""

    def __init__(self, file: Any, **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        self._fast = (
            self.fields_to_export is None
            and not self.indent
            and (self.encoding or "utf-8").lower().replace("-", "") == "utf8"
        )

    def export_item(self, item: Any) -> None:
        if self._fast and item.__class__ is dict:
            try:
                self.file.write(orjson.dumps(item, option=orjson.OPT_APPEND_NEWLINE))
            except TypeError:  # a value orjson cannot write: Scrapy's encoder can
                pass
            else:
                return
        super().export_item(item)


class QuietItemsLogFormatter(LogFormatter):
    """Scrapy's log formatter without the per-item "Scraped from" record unless the log
    level is DEBUG: at 30,000 items a store, building records nobody sees is a cost."""

    def __init__(self, debug: bool = True) -> None:
        self.debug = debug

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        level = crawler.settings.get("LOG_LEVEL")
        numeric = logging.getLevelName(level) if isinstance(level, str) else level
        return cls(debug=not isinstance(numeric, int) or numeric <= logging.DEBUG)

    def scraped(self, item: Any, response: Any, spider: Spider) -> Any:
        return super().scraped(item, response, spider) if self.debug else None
