"""What both listing spiders (``coles_products``, ``woolworths_products``) share: the walk of
each store through the listings, its feed in the product inbox, and the rule that a store's
file is published only when its walk is complete.

A spider knows its site (which pages to ask for, how to read them); :class:`ListingFeeds`
keeps the accounts: every listing request issued (:meth:`ListingFeeds.issued`) is answered
(:meth:`ListingFeeds.lines`, which writes each SKU once a store) or lost
(:meth:`ListingFeeds.failed`); at the close, :meth:`ListingFeeds.judge` tells each store's
feed whether it may be published (``feed_incomplete``), and ``feed_published`` is counted.
Set-up requests the spider awaits go through :func:`setup_download`, whose failures are a
typed :class:`~colesbarcodes.site.unusable.SiteUnusable`.
"""

from __future__ import annotations

import gc
import logging
from typing import TYPE_CHECKING, Any

import scrapy
from scrapy import signals

from colesbarcodes.crawl.browser import BrowserUnavailable
from colesbarcodes.crawl.components import disable_components, spider_priority
from colesbarcodes.crawl.exits import BlockedByProtection
from colesbarcodes.feeds.store_walk import StoreWalk
from colesbarcodes.feeds.stores import STORE_OPTION, store_feeds
from colesbarcodes.middlewares.prefill import PrefillMiddleware
from colesbarcodes.pipelines.barcode_upsert import BarcodeUpsertPipeline
from colesbarcodes.signals import feed_incomplete, feed_published
from colesbarcodes.site.unusable import SiteUnusable, Unusable

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from pathlib import Path

    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from scrapy.settings import BaseSettings
    from twisted.python.failure import Failure

__all__ = [
    "LISTING_SETTINGS",
    "ListingFeeds",
    "disable_barcode_components",
    "failure_reason",
    "setup_download",
]

logger = logging.getLogger(__name__)

# Both listing spiders' custom_settings. Tens of thousands of items a run, each a line of
# pure CPU work: no per-item "Scraped from" log record unless at DEBUG, few item workers
# per response (Scrapy starts CONCURRENT_ITEMS tasks for every response; parallel items
# gain nothing here), and room for the responses waiting for their items: a listing page is
# ~200 KB, and Scrapy's default budget (5 MB, 25 pages) stops downloading while the item
# work lags, so the crawl would wait on the network and the CPU in turn (at 100 ms latency,
# a quarter slower).
LISTING_SETTINGS: dict[str, Any] = {
    "LOG_FORMATTER": "colesbarcodes.logformatter.QuietItemsLogFormatter",
    "CONCURRENT_ITEMS": 4,
    "SCRAPER_SLOT_MAX_ACTIVE_SIZE": 32 * 1024 * 1024,
}
# Garbage collection while the walk runs: each page's parsed answer is thousands of young
# objects that die with it, and the crawl's own state lives long. Collecting the young
# generation every 100,000 allocations (Python's default: 700) and freezing what exists
# when the spider opens keeps the collector from rescanning the crawl's state all the
# time: a fifth less CPU at 100 ms latency (bench/bench_listing.py). Restored at the close.
GC_THRESHOLD = (100_000, 50, 1000)


def disable_barcode_components(settings: BaseSettings) -> None:
    """A listing spider's ``update_settings``: turn off the barcode crawl's components. The
    listing crawl stores nothing in the database, so it needs no barcode pipeline (which
    would migrate the database on opening and close the crawl when the database is down),
    nor the prefill: it has no SKUs to skip, and the prefill would be one more layer for
    each of the tens of thousands of items to pass through."""
    disable_components(settings, "ITEM_PIPELINES", BarcodeUpsertPipeline)
    disable_components(settings, "SPIDER_MIDDLEWARES", PrefillMiddleware)


async def setup_download(crawler: Crawler, url: str, **kwargs: Any) -> Response:
    """A set-up request (home page, category tree) awaited through the downloader
    middlewares (exits, protection, retries). No usable answer is a :class:`SiteUnusable`:
    ``blocked`` when the site's protection refused every exit, the browser's own reason
    when it did not start, else ``site_unusable``."""
    if crawler.engine is None:
        raise RuntimeError("the crawler is not running")
    meta = {"coles_source": "listing_setup", **kwargs.pop("meta", {})}
    try:
        return await crawler.engine.download_async(
            scrapy.Request(url, dont_filter=True, meta=meta, **kwargs)
        )
    except BrowserUnavailable as exc:  # this machine's browser, not the site
        raise exc.unusable() from None
    except BlockedByProtection as exc:
        raise SiteUnusable(Unusable.BLOCKED, f"{url}: {exc}; set COLES_PROXIES") from None
    except Exception as exc:
        raise SiteUnusable(Unusable.UNUSABLE, f"{url}: {type(exc).__name__}: {exc}") from None


def failure_reason(failure: Failure) -> str:
    """Why a listing request has no usable answer, in a few words for the log."""
    response = getattr(failure.value, "response", None)
    if response is not None:
        return f"HTTP {response.status} after retries"
    kind = failure.type.__name__ if failure.type else "error"
    return f"{kind}: {failure.getErrorMessage()}"[:300]


class ListingFeeds:
    """One listing crawl's walks, one per store, and their feeds in the product inbox.

    Built by the spider's ``from_crawler``: adds one ``FEEDS`` entry per store
    (``{company}_store-{store}_{stamp}.jsonl``, published atomically) and listens to
    ``feed_published``. ``max_failed`` pages may be lost before a store's file is withheld
    (``tolerance`` names the setting, for the log).
    """

    def __init__(
        self,
        crawler: Crawler,
        company: str,
        stores: Iterable[str],
        inbox: Path,
        stamp: str,
        max_failed: int = 0,
        tolerance: str = "COLES_LISTING_MAX_FAILED_PAGES",
    ) -> None:
        self.crawler = crawler
        self.company = company
        self.max_failed = max_failed
        self.tolerance = tolerance
        self.walks: dict[str, StoreWalk] = {store: StoreWalk(store) for store in stores}
        self.published: dict[str, Path] = {}
        settings = crawler.settings
        feeds = {
            **settings.getdict("FEEDS"),
            **store_feeds(self.walks, inbox, stamp, company),
        }
        settings.set("FEEDS", feeds, spider_priority(settings, "FEEDS"))
        crawler.signals.connect(self.file_published, signal=feed_published)
        crawler.signals.connect(self._collect_less, signal=signals.spider_opened)
        crawler.signals.connect(self._collect_as_before, signal=signals.spider_closed)
        self._gc_threshold: tuple[int, int, int] | None = None

    def _collect_less(self) -> None:
        self._gc_threshold = gc.get_threshold()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLD)

    def _collect_as_before(self) -> None:
        if self._gc_threshold is not None:
            gc.set_threshold(*self._gc_threshold)
            gc.unfreeze()
            self._gc_threshold = None

    def walk(self, store: str) -> StoreWalk:
        return self.walks[store]

    def issued(self, walk: StoreWalk) -> None:
        """A listing request for ``walk`` is on its way: the walk waits for its answer."""
        walk.pending += 1

    def scheduled(self) -> None:
        """Every store's first requests are issued: a walk can now be complete."""
        for walk in self.walks.values():
            walk.scheduled = True

    def failed(self, walk: StoreWalk, where: str, reason: str) -> None:
        """A listing page gave nothing usable after retries: lost for ``walk``."""
        walk.failed += 1
        walk.pending -= 1
        self.crawler.stats.inc_value("listing/pages_failed")
        logger.warning("Store %s: listing %s failed: %s", walk.store_id, where, reason)

    def lines(self, walk: StoreWalk, lines: Iterable[dict[str, Any] | None]) -> Iterator[Any]:
        """A page's lines (``None``: a row without a usable SKU), each SKU once a store;
        the page is answered once all are through. A line lost midway (an error in the
        caller's conversion) makes the page failed: the store's file must not look
        complete."""
        stats = self.crawler.stats
        seen = walk.seen
        rows = new = 0
        try:
            for line in lines:
                rows += 1
                if line is None:
                    stats.inc_value("listing/rows_without_sku")
                elif line["sku"] not in seen:
                    seen.add(line["sku"])
                    new += 1
                    yield line
        except Exception:
            walk.failed += 1
            walk.pending -= 1
            raise
        stats.inc_value("listing/pages")
        stats.inc_value("listing/products", new)
        stats.inc_value(f"listing/products/{walk.store_id}", new)
        stats.inc_value("listing/repeats_dropped", rows - new)
        walk.pending -= 1  # only here: a walk stopped mid-page never counts as complete

    def judge(self) -> None:
        """At the spider's close (the walks are final, the feeds not yet closed): a store
        whose file will be withheld is an error, which the crawl's monitors count, and its
        feed is told so (``feed_incomplete``)."""
        stats = self.crawler.stats
        complete = 0
        for walk in self.walks.values():
            problem = walk.problem(self.max_failed, self.tolerance)
            if problem:
                logger.error("Store %s: its file will not be published: %s", walk.store_id, problem)
                self.crawler.signals.send_catch_log(
                    feed_incomplete, options={STORE_OPTION: walk.store_id}, problem=problem
                )
            elif walk.seen:
                complete += 1
            else:
                logger.warning("Store %s: the listings gave no product: no file", walk.store_id)
        stats.set_value("listing/stores_complete", complete)
        stats.set_value("listing/stores_incomplete", len(self.walks) - complete)

    def file_published(self, feed_options: dict[str, Any], path: Path) -> None:
        """``feed_published``: a store's file is in the product inbox."""
        store = str(feed_options.get(STORE_OPTION))
        if store not in self.walks:
            return
        self.published[store] = path
        self.crawler.stats.inc_value("listing/files_published")
        logger.info(
            "Store %s: %d products published in %s", store, len(self.walks[store].seen), path
        )
