"""``scrapy crawl coles_products``: fill the product inbox from the site's category listings.

Reads the build id from the home page (through the crawl's
:class:`~colesbarcodes.extensions.site_session.SiteSession`) and the category tree, then
walks every category for every store asked for (``-a stores=0584,0601``). A category too
big to list whole (more than ``COLES_LISTING_PAGE_SIZE`` x ``COLES_LISTING_MAX_PAGES``
products) is walked through its sub-categories; promotional groupings
(``COLES_LISTING_SKIP_GROUPS``) are left out; ad rows are dropped; each (store, SKU) is
written once, as a canonical inbox line. Each store gets one file in the product inbox,
published only when its walk is complete (the walks, feeds and publication are
:class:`~colesbarcodes.crawl.listing.ListingFeeds`, shared with ``woolworths_products``).
Parsing lives in :mod:`colesbarcodes.site.coles`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import scrapy
from scrapy import signals
from scrapy.exceptions import CloseSpider

from colesbarcodes.config import setting_bool, setting_int, setting_str
from colesbarcodes.crawl.arguments import (
    argument_or_setting,
    arguments_as_settings,
    folder_value,
    http_url,
    named,
    refuse_unknown_arguments,
)
from colesbarcodes.crawl.listing import (
    LISTING_SETTINGS,
    ListingFeeds,
    disable_barcode_components,
    failure_reason,
    setup_download,
)
from colesbarcodes.db.engine import database_url
from colesbarcodes.extensions.site_session import SiteSession
from colesbarcodes.feeds.store_walk import StoreWalk, parse_stores
from colesbarcodes.inbox.missing_barcodes import queue_missing_barcodes
from colesbarcodes.site.coles import (
    Category,
    CategoryTreeRefused,
    ListingPage,
    SiteFormatError,
    categories_graphql_body,
    categories_path,
    graphql_headers,
    listing_line,
    listing_page_count,
    listing_path,
    listing_plan,
    parse_category_tree,
    parse_graphql_category_tree,
    parse_listing,
)
from colesbarcodes.site.unusable import SiteUnusable, Unusable, finish_reason

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Collection, Iterator, Mapping
    from typing import Self

    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from scrapy.settings import BaseSettings
    from twisted.python.failure import Failure

    from colesbarcodes.site.coles.home import HomePage

logger = logging.getLogger(__name__)

T = TypeVar("T")


def _parsed(
    what: str,
    parse: Callable[[Response], T],
    response: Response,
    statuses: Collection[int] | None = (200,),
) -> T:
    """``response`` (of one of ``statuses``, None: any) read by ``parse``. Else nothing can
    be listed: :class:`SiteUnusable` naming ``what``, ``site_changed`` when the site refused
    the crawl's document (it no longer fits the site's), else ``site_unusable``."""
    if statuses is not None and response.status not in statuses:
        raise SiteUnusable(Unusable.UNUSABLE, f"{what} answered {response.status}")
    try:
        return parse(response)
    except CategoryTreeRefused as exc:
        reason = Unusable.CHANGED if exc.site_changed else Unusable.UNUSABLE
        raise SiteUnusable(reason, str(exc)) from None
    except SiteFormatError as exc:
        raise SiteUnusable(Unusable.UNUSABLE, f"{what}: {exc}") from None


def _build_id(home: HomePage) -> str:
    """The build id every listing URL needs: without it nothing can be listed."""
    if not home.build_id:
        raise SiteUnusable(Unusable.UNUSABLE, f"home page: {home.no_build_id}")
    return home.build_id


@dataclass(frozen=True, slots=True)
class ListingTask:
    """What a listing request is for (its ``meta["coles_listing"]``)."""

    store_id: str
    category: Category
    page: int
    build_id: str
    retried: bool = False  # already re-sent once with a fresh build id


@dataclass(frozen=True)
class ProductsArguments:
    """What the listing crawl is asked to do: each spider argument given, else its setting.

    ``stores`` (COLES_STORE_ID; several: ``0584,0601``), ``base_url`` (COLES_BASE_URL),
    ``inbox`` (COLES_PRODUCT_INBOX), and the settings only: ``skip`` (the listing paths of
    COLES_LISTING_SKIP_GROUPS), ``page_size`` (COLES_LISTING_PAGE_SIZE), ``max_pages``
    (COLES_LISTING_MAX_PAGES), ``max_failed`` (COLES_LISTING_MAX_FAILED_PAGES),
    ``queue_missing`` (COLES_LISTING_QUEUE_MISSING_BARCODES), and where the SKUs without a
    known barcode are looked up and queued: ``database_url`` (DATABASE_URL) and
    ``enrichment_inbox`` (COLES_ENRICHMENT_INBOX).
    """

    stores: tuple[str, ...]
    base_url: str
    inbox: Path
    skip: frozenset[str] = frozenset({"down-down", "bonus-prize-entries"})
    page_size: int = 48
    max_pages: int = 104
    max_failed: int = 0
    queue_missing: bool = False
    database_url: str = field(default_factory=database_url)
    enrichment_inbox: Path = Path("inboxes/barcode_enrichment_inbox")

    @classmethod
    def from_settings(
        cls, settings: BaseSettings, given: Mapping[str, object] | None = None
    ) -> Self:
        """From ``settings``, each overridden by its argument in ``given``; a value the
        crawl cannot use raises ConfigurationError. The inboxes are created when missing
        (the crawl writes into them), but a file in their place is refused."""
        given = given or {}
        queue_missing = setting_bool(settings, "COLES_LISTING_QUEUE_MISSING_BARCODES")
        enrichment_inbox = setting_str(settings, "COLES_ENRICHMENT_INBOX")
        if queue_missing:
            folder_value("COLES_ENRICHMENT_INBOX", enrichment_inbox, must_exist=False)
        return cls(
            stores=tuple(
                parse_stores(
                    argument_or_setting(given, "stores", settings, "COLES_STORE_ID"),
                    named(given, "stores", "COLES_STORE_ID"),
                )
            ),
            base_url=http_url(
                named(given, "base_url", "COLES_BASE_URL"),
                argument_or_setting(given, "base_url", settings, "COLES_BASE_URL"),
            ),
            inbox=folder_value(
                f"the product inbox ({named(given, 'inbox', 'COLES_PRODUCT_INBOX')})",
                argument_or_setting(given, "inbox", settings, "COLES_PRODUCT_INBOX"),
                must_exist=False,
            ),
            skip=frozenset(
                str(group).strip("/") for group in settings.getlist("COLES_LISTING_SKIP_GROUPS")
            ),
            page_size=setting_int(settings, "COLES_LISTING_PAGE_SIZE"),
            max_pages=setting_int(settings, "COLES_LISTING_MAX_PAGES"),
            max_failed=setting_int(settings, "COLES_LISTING_MAX_FAILED_PAGES"),
            queue_missing=queue_missing,
            database_url=setting_str(settings, "DATABASE_URL"),
            enrichment_inbox=Path(enrichment_inbox),
        )


class ColesProductsSpider(scrapy.Spider):
    """Products, prices and availability of whole stores, from the category listings.

    Arguments (``-a name=value``), each overriding the setting in brackets: ``stores``
    (COLES_STORE_ID; several: ``0584,0601``), ``base_url`` (COLES_BASE_URL), ``inbox``
    (COLES_PRODUCT_INBOX).
    """

    name = "coles_products"
    company = "coles"
    # Some 30,000 items a store: the listing spiders' item tuning (crawl.listing).
    custom_settings = {**LISTING_SETTINGS}
    arguments: ProductsArguments
    feeds: ListingFeeds
    base_url: str
    stores: list[str]
    inbox: Path
    skip: frozenset[str]
    page_size: int
    max_pages: int
    max_failed: int
    queue_missing: bool

    def __init__(
        self,
        stores: str | None = None,
        base_url: str | None = None,
        inbox: str | None = None,
        **kwargs: Any,
    ) -> None:
        refuse_unknown_arguments(self.name, kwargs, ("base_url", "inbox", "stores"))
        super().__init__(**kwargs)  # scrapyd adds _job
        self._arguments = {"stores": stores, "base_url": base_url, "inbox": inbox}
        self.stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")  # names this run's files
        self.build_id = ""
        self.walks: dict[str, StoreWalk] = {}
        self._refreshes: dict[str, asyncio.Future[str]] = {}
        # One bound-method object per callback for all requests (Scrapy caches its
        # per-callback inspection by object).
        self._callback, self._errback = self.parse_listing, self.listing_failed

    @classmethod
    def update_settings(cls, settings: BaseSettings) -> None:
        super().update_settings(settings)
        disable_barcode_components(settings)

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> ColesProductsSpider:
        spider: ColesProductsSpider = super().from_crawler(crawler, *args, **kwargs)
        settings, given = crawler.settings, spider._arguments
        arguments_as_settings(crawler, spider, given, {})
        arguments = ProductsArguments.from_settings(settings, given)
        spider.arguments = arguments
        spider.base_url = arguments.base_url
        spider.stores = list(arguments.stores)
        spider.inbox = arguments.inbox
        spider.skip = arguments.skip
        spider.page_size = arguments.page_size
        spider.max_pages = arguments.max_pages
        spider.max_failed = arguments.max_failed
        spider.queue_missing = arguments.queue_missing
        spider.feeds = ListingFeeds(
            crawler, spider.company, spider.stores, spider.inbox, spider.stamp, spider.max_failed
        )
        spider.walks = spider.feeds.walks
        crawler.signals.connect(spider.feeds_closed, signal=signals.feed_exporter_closed)
        return spider

    # -- the site: build id and category tree -------------------------------------------------

    async def _get(self, url: str, **kwargs: Any) -> Response:
        """A request awaited here (through the downloader middlewares: exits, protection,
        the API key, retries)."""
        return await setup_download(self.crawler, url, **kwargs)

    async def _read_tree_graphql(self) -> tuple[Category, ...]:
        """The tree from GraphQL ``GetShopProductsMenu`` (the site since February 2026)."""
        config = SiteSession.of(self.crawler).config
        if config is None:
            raise SiteUnusable(Unusable.UNUSABLE, "no subscription key on the home page")
        response = await self._get(
            config.graphql_url,
            method="POST",
            body=categories_graphql_body(self.stores[0]),
            headers=graphql_headers(self.base_url, config.api_key),
            meta={"coles_api": True, "handle_httpstatus_list": [400, 413]},
        )
        return _parsed(
            "GetShopProductsMenu",
            lambda r: parse_graphql_category_tree(r.body, r.status),
            response,
            statuses=None,  # a refusal's reason is in the body
        )

    async def _home_page(self) -> HomePage:
        """The home page, read by the crawl's SiteSession (which keeps the key GraphQL
        needs); a page that did not come leaves nothing to list (``site_unusable``), unless
        blocked or without a browser, which keep their own reasons."""
        try:
            return await SiteSession.of(self.crawler).read_home(self.base_url)
        except SiteUnusable as exc:
            if exc.reason is Unusable.UNREACHABLE:
                raise SiteUnusable(Unusable.UNUSABLE, exc.detail) from None
            raise

    async def _read_build_id(self) -> str:
        return _build_id(await self._home_page())

    async def _fresh_build_id(self, stale: str) -> str:
        """The build id after a 404 for ``stale``: the home page is read again once per
        stale id, however many requests met it."""
        if stale != self.build_id:
            return self.build_id  # another request has refreshed it already
        refresh = self._refreshes.get(stale)
        if refresh is None:
            self.crawler.stats.inc_value("listing/build_id_checks")
            refresh = self._refreshes[stale] = asyncio.ensure_future(self._read_build_id())
        try:
            fresh = await asyncio.shield(refresh)
        except SiteUnusable as exc:
            if exc.reason is Unusable.BROWSER_UNAVAILABLE:
                raise CloseSpider(str(exc)) from None
            logger.error("Could not re-read the build id after a 404: %s", exc.detail)
            return self.build_id
        if fresh != self.build_id and self.build_id == stale:
            self.crawler.stats.inc_value("listing/build_id_changed")
            logger.info("The site's build id changed: %s -> %s", stale, fresh)
            self.build_id = fresh
        return self.build_id

    async def _read_tree(self) -> tuple[Category, ...]:
        """From GraphQL first; the older ``browse.json`` route when that answer is unusable.

        When both fail, the crawl ends naming GraphQL's failure first: on the 2026 site the
        route is gone, so its 404 only follows from the first failure (a refused document
        is a site change, ``site_changed``).
        """
        stats = self.crawler.stats
        try:
            tree = await self._read_tree_graphql()
        except SiteUnusable as exc:
            if exc.reason is Unusable.BROWSER_UNAVAILABLE:
                raise
            first = exc
            stats.inc_value("listing/categories_fallback")
            logger.warning(
                "Category tree from GraphQL unusable (%s): reading the older browse.json route",
                exc.detail,
            )
        else:
            stats.set_value("listing/categories_source", "graphql")
            return tree
        stats.set_value("listing/categories_source", "browse.json")
        try:
            return await self._read_tree_route()
        except SiteUnusable as exc:
            if exc.reason is Unusable.BROWSER_UNAVAILABLE:
                raise
            raise SiteUnusable(first.reason, f"{first.detail}; {exc.detail}") from None

    async def _read_tree_route(self) -> tuple[Category, ...]:
        """The tree from ``/_next/data/{buildId}/en/browse.json`` (the site until 2026)."""
        response = await self._get(self.base_url + categories_path(self.build_id))
        if response.status == 404:
            stale = self.build_id
            if await self._fresh_build_id(stale) != stale:
                response = await self._get(self.base_url + categories_path(self.build_id))
        return _parsed("browse.json", lambda r: parse_category_tree(r.body), response)

    async def start(self) -> AsyncIterator[Any]:
        try:
            home = await self._home_page()
            if home.config is None:
                no_key = finish_reason(Unusable.CHANGED, f"home page: {home.no_config}")
                logger.warning("%s: listing without GraphQL", no_key)
            self.build_id = _build_id(home)
            tree = await self._read_tree()
        except SiteUnusable as exc:
            raise CloseSpider(str(exc)) from None
        listed, skipped = listing_plan(tree, self.skip, self.page_size * self.max_pages)
        stats = self.crawler.stats
        stats.set_value("listing/categories_planned", len(listed))
        stats.set_value("listing/groups_skipped", len(skipped))
        logger.info(
            "Site build %s: %d categories to list for stores %s (skipped: %s)",
            self.build_id,
            len(listed),
            ", ".join(self.stores),
            ", ".join(c.path for c in skipped) or "none",
        )
        for order, walk in enumerate(self.walks.values()):
            for category in listed:
                yield self._request(walk, category, 1, priority=-order)  # stores in turn
        self.feeds.scheduled()

    # -- listings -----------------------------------------------------------------------------

    def _request(
        self,
        walk: StoreWalk,
        category: Category,
        page: int,
        priority: int,
        retried: bool = False,
    ) -> scrapy.Request:
        self.feeds.issued(walk)
        task = ListingTask(walk.store_id, category, page, self.build_id, retried)
        return scrapy.Request(
            self.base_url + listing_path(self.build_id, category.path, page, walk.store_id),
            meta={"coles_listing": task},
            priority=priority,
            dont_filter=True,  # every (category, page, store) is asked for once by design
            callback=self._callback,
            errback=self._errback,
        )

    def _fail(self, walk: StoreWalk, task: ListingTask, reason: str) -> None:
        self.feeds.failed(walk, f"{task.category.path} page {task.page}", reason)

    def _follow(
        self, walk: StoreWalk, task: ListingTask, page: ListingPage, priority: int
    ) -> list[scrapy.Request]:
        """After a category's first page: its other pages, or its sub-categories when it is
        bigger than the site will page through."""
        stats = self.crawler.stats
        page_size = page.page_size or self.page_size
        if page.total > page_size * self.max_pages:
            children = [
                child
                for child in (task.category.children or page.children)
                if child.path not in self.skip
            ]
            if children:
                stats.inc_value("listing/categories_split")
                return [self._request(walk, child, 1, priority) for child in children]
            walk.truncated.append(task.category.path)
            stats.inc_value("listing/categories_truncated")
            logger.warning(
                "Store %s: %s lists %d products, more than %d pages show, and has no "
                "sub-categories: the rest cannot be listed",
                walk.store_id,
                task.category.path,
                page.total,
                self.max_pages,
            )
        count = listing_page_count(page.total, page_size, self.max_pages)
        return [self._request(walk, task.category, n, priority) for n in range(2, count + 1)]

    async def _stale(self, walk: StoreWalk, task: ListingTask, priority: int) -> Any:
        """A 404: a stale build id is refreshed (once) and the page asked for again."""
        if not task.retried and await self._fresh_build_id(task.build_id) != task.build_id:
            self.crawler.stats.inc_value("listing/stale_build_retries")
            walk.pending -= 1
            return self._request(walk, task.category, task.page, priority, retried=True)
        self.crawler.stats.inc_value("listing/not_found")
        self._fail(walk, task, "404 with the current build id (no such category)")
        return None

    def parse_listing(self, response: Response) -> Iterator[Any]:
        """A listing page: its products as lines and, after a first page, the rest of the
        category. Pure work on the page (nothing to await): a 404 goes to the errback."""
        task: ListingTask = response.meta["coles_listing"]
        walk = self.walks[task.store_id]
        stats = self.crawler.stats
        try:
            page = parse_listing(response.body, task.category.path)
        except SiteFormatError as exc:
            self._fail(walk, task, str(exc))
            return
        stats.inc_value("listing/ad_rows_dropped", page.other_rows)
        if task.page == 1:
            priority = response.request.priority if response.request is not None else 0
            yield from self._follow(walk, task, page, priority)
        scraped_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        base_url, store = self.base_url, walk.store_id
        yield from self.feeds.lines(
            walk, (listing_line(row, store, base_url, scraped_at) for row in page.products)
        )

    async def listing_failed(self, failure: Failure) -> AsyncIterator[Any]:
        """A listing request without a usable answer: a 404 may mean a stale build id
        (retried once with a fresh one); anything else, after retries, is a lost page."""
        request = failure.request  # type: ignore[attr-defined]
        task: ListingTask = request.meta["coles_listing"]
        walk = self.walks[task.store_id]
        response = getattr(failure.value, "response", None)
        if response is not None and response.status == 404:
            retry = await self._stale(walk, task, request.priority)
            if retry is not None:
                yield retry
            return
        self._fail(walk, task, failure_reason(failure))

    # -- publication --------------------------------------------------------------------------

    def closed(self, reason: str) -> None:
        """Judge every store's walk (final by now, before the feeds close): a store whose
        file will be withheld is an error, which the crawl's monitors count."""
        self.feeds.judge()

    @property
    def published(self) -> dict[str, Path]:
        """The files in the product inbox, by store (``feed_published``)."""
        return self.feeds.published

    async def feeds_closed(self) -> None:
        """After the files: optionally queue the SKUs without a known barcode."""
        if not self.queue_missing or not self.published:
            return
        skus: dict[int, str] = {}
        for store in (store for store in self.stores if store in self.published):
            for sku in self.walks[store].seen:
                skus.setdefault(sku, store)
        queued = await asyncio.to_thread(
            queue_missing_barcodes,
            self.arguments.database_url,
            self.arguments.enrichment_inbox,
            self.company,
            listed=skus,
            prefix="listing",
            stamp=self.stamp,
        )
        self.crawler.stats.set_value("listing/barcodes_queued", queued.count)
        if queued.path is not None:
            logger.info(
                "Queued %d of %d SKUs without a known barcode: %s",
                queued.count,
                len(skus),
                queued.path,
            )
        else:
            logger.info("Every listed SKU has a known barcode: nothing queued")
