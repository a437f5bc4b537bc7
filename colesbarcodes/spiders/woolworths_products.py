"""``scrapy crawl woolworths_products``: fill the product inbox from Woolworths' listing API.

Primes the site's cookies with its home page, reads the category tree
(``/apis/ui/PiesCategoriesWithSpecials``) and walks each department's listing (``POST
/apis/ui/browse/category``, 36 rows a page): page 1 first, then up to the last page its
``TotalRecordCount`` gives (past the end the API still answers with sponsored rows, so an
empty page is never the end). Specials groupings, Everyday Market (third-party sellers) and
``WOOLWORTHS_SKIP_DEPARTMENTS`` are left out; sponsored and marketplace rows are dropped;
each ``Stockcode`` is written once, with its barcode, as a canonical inbox line.

Prices are not per store for an anonymous session (``../shared`` facts): the crawl writes one
file for the store ``online``, ``woolworths_store-online_<time>.jsonl``, published only when
the walk is complete (:class:`~colesbarcodes.crawl.listing.ListingFeeds`, shared with
``coles_products``). A department the site refuses (an error status or an unreadable answer
after retries) is logged and counted (``listing/departments_failed``) and the walk goes on;
its pages are lost pages, so the file is withheld unless ``WOOLWORTHS_MAX_FAILED_PAGES``
allows them. Akamai's block is handled by the exits (``COLES_PROXIES``); when no exit is
accepted the crawl ends ``blocked: ...`` (exit status 5). Parsing lives in
:mod:`colesbarcodes.site.woolworths`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import scrapy
from scrapy.exceptions import CloseSpider

from colesbarcodes.config import setting_int
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
from colesbarcodes.site.unusable import SiteUnusable, Unusable
from colesbarcodes.site.woolworths import (
    CATEGORIES_PATH,
    COMPANY,
    LISTING_PATH,
    MAX_PRODUCTS,
    ONLINE_STORE,
    Department,
    SiteFormatError,
    api_headers,
    department_plan,
    listing_body,
    listing_line,
    listing_page_count,
    parse_category_tree,
    parse_listing,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from scrapy.settings import BaseSettings
    from twisted.python.failure import Failure

    from colesbarcodes.feeds.store_walk import StoreWalk

__all__ = ["WoolworthsProductsSpider"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DepartmentPage:
    """What a listing request is for (its ``meta["woolworths_listing"]``)."""

    department: Department
    page: int


class WoolworthsProductsSpider(scrapy.Spider):
    """Woolworths' products, online prices, availability and barcodes, from its listings.

    Arguments (``-a name=value``), each overriding the setting in brackets: ``base_url``
    (WOOLWORTHS_BASE_URL), ``inbox`` (COLES_PRODUCT_INBOX).
    """

    name = "woolworths_products"
    company = COMPANY
    # Polite by default, as the public clients are (1.5 s between requests, randomised by
    # Scrapy to 0.75-2.25 s, two at a time); no browser: Akamai poses no challenge.
    custom_settings = {
        **LISTING_SETTINGS,
        "CRAWL_RETAILER": "woolworths",
        "COLES_BOTCHECK_ENABLED": False,
        "DOWNLOAD_DELAY": 1.5,
        "CONCURRENT_REQUESTS_PER_DOMAIN": 2,
    }
    feeds: ListingFeeds
    base_url: str
    inbox: Path
    skip: tuple[str, ...]
    max_failed: int

    def __init__(
        self, base_url: str | None = None, inbox: str | None = None, **kwargs: Any
    ) -> None:
        refuse_unknown_arguments(self.name, kwargs, ("base_url", "inbox"))
        super().__init__(**kwargs)  # scrapyd adds _job
        self._arguments = {"base_url": base_url, "inbox": inbox}
        self.stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")  # names this run's file
        self.failed_departments: set[str] = set()
        self._callback, self._errback = self.parse_listing, self.listing_failed

    @classmethod
    def update_settings(cls, settings: BaseSettings) -> None:
        super().update_settings(settings)
        disable_barcode_components(settings)

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> WoolworthsProductsSpider:
        spider: WoolworthsProductsSpider = super().from_crawler(crawler, *args, **kwargs)
        settings, given = crawler.settings, spider._arguments
        arguments_as_settings(crawler, spider, given, {})
        spider.base_url = http_url(
            named(given, "base_url", "WOOLWORTHS_BASE_URL"),
            argument_or_setting(given, "base_url", settings, "WOOLWORTHS_BASE_URL"),
        ).rstrip("/")
        spider.inbox = folder_value(
            f"the product inbox ({named(given, 'inbox', 'COLES_PRODUCT_INBOX')})",
            argument_or_setting(given, "inbox", settings, "COLES_PRODUCT_INBOX"),
            must_exist=False,
        )
        spider.skip = tuple(str(s) for s in settings.getlist("WOOLWORTHS_SKIP_DEPARTMENTS"))
        spider.max_failed = setting_int(settings, "WOOLWORTHS_MAX_FAILED_PAGES")
        spider.feeds = ListingFeeds(
            crawler,
            COMPANY,
            [ONLINE_STORE],
            spider.inbox,
            spider.stamp,
            spider.max_failed,
            tolerance="WOOLWORTHS_MAX_FAILED_PAGES",
        )
        return spider

    # -- the site: cookies and the category tree ---------------------------------------------

    async def _prime(self) -> None:
        """The home page, for the cookies the site's own pages carry into its API. Another
        answer than 200 is not fatal (the tree says whether the API answers); a block is."""
        response = await setup_download(
            self.crawler, self.base_url + "/", headers={"Accept": "text/html,*/*;q=0.8"}
        )
        if response.status != 200:
            logger.warning(
                "The home page answered %d: going on without its cookies", response.status
            )

    async def _read_tree(self) -> tuple[Department, ...]:
        url = self.base_url + CATEGORIES_PATH
        response = await setup_download(self.crawler, url, headers=api_headers(self.base_url))
        if response.status != 200:
            raise SiteUnusable(Unusable.UNUSABLE, f"the category tree answered {response.status}")
        try:
            return parse_category_tree(response.body)
        except SiteFormatError as exc:
            raise SiteUnusable(Unusable.UNUSABLE, f"{CATEGORIES_PATH}: {exc}") from None

    async def start(self) -> AsyncIterator[Any]:
        try:
            await self._prime()
            tree = await self._read_tree()
        except SiteUnusable as exc:
            raise CloseSpider(str(exc)) from None
        listed, skipped = department_plan(tree, self.skip)
        stats = self.crawler.stats
        stats.set_value("listing/departments_planned", len(listed))
        stats.set_value("listing/departments_skipped", len(skipped))
        logger.info(
            "%d departments to list (skipped: %s)",
            len(listed),
            ", ".join(d.slug or d.node_id for d in skipped) or "none",
        )
        walk = self.feeds.walk(ONLINE_STORE)
        for order, department in enumerate(listed):
            yield self._request(walk, department, 1, priority=-order)
        self.feeds.scheduled()

    # -- listings -----------------------------------------------------------------------------

    def _request(
        self, walk: StoreWalk, department: Department, page: int, priority: int
    ) -> scrapy.Request:
        self.feeds.issued(walk)
        return scrapy.Request(
            self.base_url + LISTING_PATH,
            method="POST",
            body=listing_body(department, page),
            headers=api_headers(self.base_url, department.slug),
            meta={"woolworths_listing": DepartmentPage(department, page)},
            priority=priority,
            dont_filter=True,  # the same URL for every page: the body tells them apart
            callback=self._callback,
            errback=self._errback,
        )

    def _fail(self, walk: StoreWalk, task: DepartmentPage, reason: str) -> None:
        department = task.department
        self.failed_departments.add(department.node_id)
        self.crawler.stats.set_value("listing/departments_failed", len(self.failed_departments))
        where = f"{department.name} ({department.node_id}) page {task.page}"
        self.feeds.failed(walk, where, reason)

    def parse_listing(self, response: Response) -> Iterator[Any]:
        """A listing page: its shelf rows as lines and, after a first page, the rest of the
        department up to the page ``TotalRecordCount`` ends on."""
        task: DepartmentPage = response.meta["woolworths_listing"]
        walk = self.feeds.walk(ONLINE_STORE)
        stats = self.crawler.stats
        try:
            answer = parse_listing(response.body)
        except SiteFormatError as exc:
            stats.inc_value("listing/format_errors")
            self._fail(walk, task, str(exc))
            return
        stats.inc_value("listing/sponsored_rows_dropped", answer.sponsored)
        stats.inc_value("listing/marketplace_rows_dropped", answer.marketplace)
        if task.page == 1:
            department = task.department
            if answer.total > MAX_PRODUCTS:
                walk.truncated.append(department.slug or department.node_id)
                stats.inc_value("listing/categories_truncated")
                logger.warning(
                    "%s lists %d products, more than the %d the site serves: the rest cannot "
                    "be listed",
                    department.name,
                    answer.total,
                    MAX_PRODUCTS,
                )
            priority = response.request.priority if response.request is not None else 0
            for page in range(2, listing_page_count(answer.total) + 1):
                yield self._request(walk, department, page, priority)
        scraped_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        base_url = self.base_url
        yield from self.feeds.lines(
            walk, (listing_line(row, base_url, scraped_at) for row in answer.rows)
        )

    def listing_failed(self, failure: Failure) -> None:
        """A listing request without a usable answer after retries: a lost page."""
        request = failure.request  # type: ignore[attr-defined]
        task: DepartmentPage = request.meta["woolworths_listing"]
        self._fail(self.feeds.walk(ONLINE_STORE), task, failure_reason(failure))

    def closed(self, reason: str) -> None:
        """Judge the walk (final by now, before the feed closes): publish or withhold."""
        if self.failed_departments:
            logger.warning(
                "Departments the site refused: %s", ", ".join(sorted(self.failed_departments))
            )
        self.feeds.judge()
