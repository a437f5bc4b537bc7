"""The crawl's session with the site: what its home page publishes, and the GraphQL batch size.

One extension owns this lifecycle for both spiders: reading the home page (build id,
subscription key, GraphQL URL: :mod:`colesbarcodes.site.coles.home`), reading it again when the
key is refused (once for all the requests that were refused together) or, for the listing
crawl, when its build id went stale, the number of SKUs a GraphQL document carries
(lowered when the server refuses a document as too complex, then kept), and how many
answers in a row were no answer the crawl can read (the crawl stops when they keep coming).
Other components find it with ``crawler.get_extension(SiteSession)``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import scrapy

from colesbarcodes.config import setting_int
from colesbarcodes.crawl.browser import BrowserUnavailable
from colesbarcodes.crawl.exits import BlockedByProtection
from colesbarcodes.site.retailer import retailer_site
from colesbarcodes.site.unusable import SiteUnusable, Unusable

if TYPE_CHECKING:
    from typing import Self

    from scrapy.crawler import Crawler

    from colesbarcodes.site.coles import SiteConfig
    from colesbarcodes.site.coles.home import HomePage

__all__ = ["SiteSession"]

SITE = retailer_site()  # the retailer's pages and answers (colesbarcodes.site.retailer)

logger = logging.getLogger(__name__)


class _RobotsErrorWithoutTraceback(logging.Filter):
    """Scrapy logs a robots.txt that cannot be downloaded as an error with a traceback. For
    this crawl that is the site being unreachable (or blocked), which the finish reason
    reports: one warning line, no traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and record.exc_info:
            error = record.exc_info[1]
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg = "robots.txt could not be downloaded for %s: %s: %s"
            record.args = (
                getattr(record.args, "get", lambda _k: "?")("request"),
                type(error).__name__,
                error,
            )
        return True


_ROBOTS_FILTER = _RobotsErrorWithoutTraceback()


class SiteSession:
    """Build id, API key and GraphQL URL of the site, refreshed when the key rotates.

    Settings: ``COLES_GRAPHQL_BATCH`` (SKUs per GraphQL document; 1 turns batching off).
    Stats: ``coles/key/refreshed``, ``coles/graphql/document_size``, ``coles/graphql/document_split_too_complex``.
    """

    def __init__(self, crawler: Crawler, batch_size: int) -> None:
        self.crawler = crawler
        self.config: SiteConfig | None = None
        self.base_url = ""
        self.generation = 0  # increases with every home page read
        self.batch_size = max(1, batch_size)
        self.unreadable_in_a_row = 0
        self._refreshing: asyncio.Future[bool] | None = None

    @classmethod
    def of(cls, crawler: Crawler) -> SiteSession:
        """The crawl's session, for the components that need it to be there."""
        session = crawler.get_extension(cls)
        if session is None:
            raise RuntimeError("the SiteSession extension is not enabled (EXTENSIONS)")
        return session

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        robots = logging.getLogger("scrapy.downloadermiddlewares.robotstxt")
        if _ROBOTS_FILTER not in robots.filters:
            robots.addFilter(_ROBOTS_FILTER)
        return cls(crawler, setting_int(crawler.settings, "COLES_GRAPHQL_BATCH"))

    async def configure(self, base_url: str) -> SiteConfig:
        """Read the site's home page for its key and GraphQL URL. Raises
        :class:`SiteUnusable` (``site_changed`` when the page has no key)."""
        home = await self.read_home(base_url)
        if home.config is None:
            raise SiteUnusable(Unusable.CHANGED, f"home page: {home.no_config}")
        return home.config

    async def read_home(self, base_url: str) -> HomePage:
        """Read the site's home page (through the downloader middlewares, so protection met
        here is handled like anywhere else) and keep its key when it has one. Raises
        :class:`SiteUnusable` when no page came: blocked, unreachable, or no browser."""
        self.base_url = base_url.rstrip("/")
        engine = self.crawler.engine
        if engine is None:
            raise RuntimeError("the crawler's engine is not running")
        try:
            response = await engine.download_async(
                scrapy.Request(f"{self.base_url}/", dont_filter=True, meta={"coles_source": "home"})
            )
        except BlockedByProtection as exc:
            raise SiteUnusable(
                Unusable.BLOCKED,
                f"home page: {exc}; set COLES_PROXIES to an exit the site accepts",
            ) from None
        except BrowserUnavailable as exc:  # this machine's browser, not the site
            raise exc.unusable() from None
        except Exception as exc:  # any download failure: the site is unreachable
            raise SiteUnusable(
                Unusable.UNREACHABLE,
                f"home page {self.base_url}/: {type(exc).__name__}: {exc}",
            ) from None
        if response.status != 200:
            raise SiteUnusable(Unusable.UNREACHABLE, f"home page answered HTTP {response.status}")
        home = SITE.read_home_page(response.body, response.url)
        config = home.config
        if config is None:
            return home
        self.config = config
        self.generation += 1
        self.crawler.stats.set_value("coles/graphql/document_size", self.batch_size)
        self.crawler.stats.set_value("coles/site/key_source", config.key_source)
        logger.info(
            "Site build %s, key from %s, GraphQL at %s",
            config.build_id or "(none)",
            config.key_source,
            config.graphql_url,
        )
        return home

    async def refresh(self, seen_generation: int) -> bool:
        """Read the home page again unless someone already did since ``seen_generation``;
        all callers refused together wait for the one reading. True if a config is there."""
        if self.generation > seen_generation:
            return self.config is not None
        if self._refreshing is not None:
            return await asyncio.shield(self._refreshing)
        self._refreshing = asyncio.get_running_loop().create_future()
        try:
            await self.configure(self.base_url)
            ok = True
            self.crawler.stats.inc_value("coles/key/refreshed")
        except SiteUnusable as exc:
            logger.error("Reading the home page again failed: %s", exc)
            ok = False
        self._refreshing.set_result(ok)
        self._refreshing = None
        return ok

    def answer_understood(self) -> None:
        """An answer the crawl could read came: the unreadable ones were passing."""
        self.unreadable_in_a_row = 0

    def answer_unreadable(self) -> int:
        """One more answer that is no answer the crawl knows; how many in a row now."""
        self.unreadable_in_a_row += 1
        self.crawler.stats.max_value("coles/answers_unreadable_in_a_row", self.unreadable_in_a_row)
        return self.unreadable_in_a_row

    def shrink_batch(self, refused_size: int, stated_limit: int | None = None) -> int:
        """The server refused a document of ``refused_size`` SKUs as too complex: later
        documents carry at most half as many, or the limit the server stated (kept for the
        rest of the crawl). Returns the size to split the refused document into."""
        self.crawler.stats.inc_value("coles/graphql/document_split_too_complex")
        if refused_size > self.batch_size:  # sent before the size was lowered: no news
            return self.batch_size
        smaller = max(1, refused_size // 2)
        if stated_limit is not None and 0 < stated_limit < refused_size:
            smaller = stated_limit
        if smaller < self.batch_size:
            logger.warning(
                "The site refused a GraphQL document of %d products as too complex: "
                "asking for at most %d per document from now on",
                refused_size,
                smaller,
            )
            self.batch_size = smaller
            self.crawler.stats.set_value("coles/graphql/document_size", smaller)
        return smaller
