"""``scrapy crawl coles_barcodes``: look up the barcodes of the SKUs in the enrichment inbox.

Files are taken one at a time, oldest first, until the inbox is empty (files arriving
during the crawl are taken too). The :class:`~colesbarcodes.middlewares.prefill.PrefillMiddleware`
answers SKUs whose barcode is already known before any request leaves; the rest are
looked up through :class:`~colesbarcodes.crawl.lookups.GraphQLBarcodeSource`; every outcome is
stored by :class:`~colesbarcodes.pipelines.barcode_upsert.BarcodeUpsertPipeline`; the inbox
files' life (claim, accounting, finishing, retry and spill files, releasing claims) is
:class:`~colesbarcodes.extensions.enrichment_files.EnrichmentFiles`'s work.

With ``COLES_FRONTIER_URL`` (or ``-a frontier=redis://...``) the SKUs come instead from
the shared frontier in Redis, which ``coles-loader frontier feed`` fills from the inbox:
several crawl processes, on one machine or many, then share the work
(:mod:`colesbarcodes.frontier.worker`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import scrapy
from scrapy.exceptions import CloseSpider

from colesbarcodes.config import argument_int, setting_bool, setting_int
from colesbarcodes.crawl.arguments import (
    argument_or_setting,
    arguments_as_settings,
    folder_value,
    http_url,
    named,
    refuse_unknown_arguments,
)
from colesbarcodes.crawl.browser import BrowserUnavailable
from colesbarcodes.crawl.lookups import GraphQLBarcodeSource, LookupKey
from colesbarcodes.extensions.enrichment_files import EnrichmentFiles
from colesbarcodes.feeds.store_walk import store_id
from colesbarcodes.frontier.worker import FrontierWorker, redis_url
from colesbarcodes.items import BarcodeLookup, Outcome
from colesbarcodes.middlewares.retry_after import RetryAfterConfig
from colesbarcodes.site.coles import ProblemKind, Reading
from colesbarcodes.site.unusable import SiteUnusable, Unusable, finish_reason

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping
    from typing import Self

    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from scrapy.settings import BaseSettings
    from twisted.python.failure import Failure

    from colesbarcodes.crawl.sku_source import SkuLine, SkuSource
    from colesbarcodes.site.coles import GraphQLAnswer, GraphQLProblem, SkuReading

logger = logging.getLogger(__name__)

ARGUMENTS = ("base_url", "frontier", "inbox", "limit", "store")
# Arguments read by components: they become their settings (for the inbox's files and the
# frontier worker).
SETTINGS_OF_ARGUMENTS = {"inbox": "COLES_ENRICHMENT_INBOX", "frontier": "COLES_FRONTIER_URL"}


@dataclass(frozen=True)
class BarcodesArguments:
    """What the barcode crawl is asked to do: each spider argument given, else its setting.

    ``base_url`` (COLES_BASE_URL), ``default_store`` (argument ``store``, COLES_STORE_ID:
    for lines without a store), ``limit`` (COLES_MAX_SKUS: SKUs taken at most, 0 for no
    limit), ``frontier_url`` (argument ``frontier``, COLES_FRONTIER_URL: empty for the
    inbox), and the settings only: ``fallback_without_gtin`` (COLES_PRODUCT_PAGE_FALLBACK),
    ``retry_times`` (RETRY_TIMES).
    """

    base_url: str
    default_store: str
    limit: int = 0
    frontier_url: str = ""
    fallback_without_gtin: bool = False
    retry_times: int = 4

    @classmethod
    def from_settings(
        cls, settings: BaseSettings, given: Mapping[str, object] | None = None
    ) -> Self:
        """From ``settings``, each overridden by its argument in ``given``; a value the
        crawl cannot use raises ConfigurationError (the inbox must be an existing folder
        unless the SKUs come from the frontier)."""
        given = given or {}
        limit = given.get("limit")
        frontier_url = argument_or_setting(given, "frontier", settings, "COLES_FRONTIER_URL")
        if frontier_url:
            redis_url(named(given, "frontier", "COLES_FRONTIER_URL"), frontier_url)
        folder_value(
            f"the inbox ({named(given, 'inbox', 'COLES_ENRICHMENT_INBOX')})",
            argument_or_setting(given, "inbox", settings, "COLES_ENRICHMENT_INBOX"),
            must_exist=not frontier_url,
        )
        return cls(
            base_url=http_url(
                named(given, "base_url", "COLES_BASE_URL"),
                argument_or_setting(given, "base_url", settings, "COLES_BASE_URL"),
            ),
            default_store=store_id(
                argument_or_setting(given, "store", settings, "COLES_STORE_ID"),
                named(given, "store", "COLES_STORE_ID"),
            ),
            limit=(
                argument_int("-a limit", limit, "a whole number of SKUs, 0 or more (0: no limit)")
                if limit is not None
                else setting_int(settings, "COLES_MAX_SKUS")
            ),
            frontier_url=frontier_url,
            fallback_without_gtin=setting_bool(settings, "COLES_PRODUCT_PAGE_FALLBACK"),
            retry_times=setting_int(settings, "RETRY_TIMES"),
        )


class ColesBarcodesSpider(scrapy.Spider):
    """Barcodes (GTINs) for the Coles SKUs of the barcode-enrichment inbox.

    Arguments (``-a name=value``), each overriding the setting in brackets:
    ``inbox`` (COLES_ENRICHMENT_INBOX), ``base_url`` (COLES_BASE_URL), ``store``
    (COLES_STORE_ID, for lines without a store), ``limit`` (COLES_MAX_SKUS: stop taking
    SKUs after this many; 0 = no limit), ``frontier`` (COLES_FRONTIER_URL: a Redis URL
    to take SKUs from the shared frontier instead of the inbox). scrapyd's ``_job`` is
    kept: it is recorded with every lookup and names this worker in the frontier.
    """

    name = "coles_barcodes"
    company = "coles"
    custom_settings = {
        # the monitors judge its GTIN share against past runs (the drift monitor)
        "COLES_MONITOR_GTIN_SHARE": True,
        # the inbox files' life, from claim to finish
        "COLES_ENRICHMENT_FILES": True,
        # the shared frontier's worker, when COLES_FRONTIER_URL is set
        "COLES_FRONTIER_WORKER": True,
    }
    arguments: BarcodesArguments
    source: GraphQLBarcodeSource
    backoff: RetryAfterConfig

    def __init__(
        self,
        inbox: str | None = None,
        base_url: str | None = None,
        store: str | None = None,
        limit: str | int | None = None,
        frontier: str | None = None,
        **kwargs: Any,
    ) -> None:
        refuse_unknown_arguments(self.name, kwargs, ARGUMENTS)
        super().__init__(**kwargs)  # scrapyd adds _job
        self._arguments = {
            "inbox": inbox,
            "base_url": base_url,
            "store": store,
            "limit": limit,
            "frontier": frontier,
        }
        # One bound-method object per callback for all requests: Scrapy caches its
        # per-callback source inspection by object, and a fresh bound method per request
        # would make it parse this module's source again for every response.
        self.callbacks = {"callback": self.parse_lookups, "errback": self.lookup_failed}

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> ColesBarcodesSpider:
        spider: ColesBarcodesSpider = super().from_crawler(crawler, *args, **kwargs)
        given = spider._arguments
        arguments_as_settings(crawler, spider, given, SETTINGS_OF_ARGUMENTS)
        spider.arguments = BarcodesArguments.from_settings(crawler.settings, given)
        spider.backoff = RetryAfterConfig.from_settings(crawler.settings)
        spider.source = GraphQLBarcodeSource(spider.arguments.base_url, crawler)
        return spider

    async def start(self) -> AsyncIterator[Any]:
        skus = self._sku_source()
        if await skus.ready():
            try:
                await self.source.configure()
            except SiteUnusable as exc:
                raise CloseSpider(str(exc)) from None
            async for line in skus.lines(self.arguments.limit):
                yield self._lookup(line)

    def _sku_source(self) -> SkuSource:
        """The shared frontier when a frontier URL is given, else the enrichment inbox."""
        if self.arguments.frontier_url:
            worker = self.crawler.get_extension(FrontierWorker)
            if worker is None:
                raise CloseSpider(
                    "COLES_FRONTIER_WORKER is off: this spider has no frontier worker"
                )
            return worker
        files = self.crawler.get_extension(EnrichmentFiles)
        if files is None:
            raise CloseSpider("COLES_ENRICHMENT_FILES is off: this spider has no inbox to read")
        return files

    def _lookup(self, line: SkuLine) -> BarcodeLookup | scrapy.Request:
        """A line's outcome when it has one without asking the site (settled by its source,
        or its barcode given in the inbox file), else the request that asks the site."""
        if line.outcome is None and line.barcode is None:
            return self.source.request(
                line.sku,
                line.store_id or self.arguments.default_store,
                {"file": line.file, "frontier_read": line.frontier_read},
                **self.callbacks,
            )
        lookup = BarcodeLookup(
            sku=line.sku,
            outcome=line.outcome or Outcome.FOUND,
            company=self.company,
            store_id=line.store_id,
            file=line.file,
            frontier_read=line.frontier_read,
            reason=line.reason,
        )
        if line.outcome is None and line.barcode is not None:
            lookup.gtin, lookup.barcode = line.barcode, line.barcode.code
            lookup.name, lookup.brand, lookup.size = line.name, line.brand, line.size
            lookup.reason = "barcode given in the inbox file"
        return lookup

    def _outcome(self, key: LookupKey, outcome: Outcome, **fields: Any) -> BarcodeLookup:
        return BarcodeLookup(
            sku=str(key["sku"]),
            outcome=outcome,
            company=self.company,
            store_id=key.get("store_id"),
            file=key.get("file"),
            frontier_read=key.get("frontier_read"),
            **fields,
        )

    def _fact(self, key: LookupKey, reading: SkuReading) -> BarcodeLookup:
        """The outcome of a reading that states a fact (never of one not understood)."""
        record = reading.record
        details: dict[str, Any] = {}
        if record is not None:
            details = {"name": record.name, "brand": record.brand, "size": record.size}
            if record.gtin is not None:
                details["raw_barcode"] = str(record.gtin)[:64]
        reason = reading.reason
        if reading.reading is Reading.NOT_FOUND:
            reason = f"the site has no such product: {reason}"[:300]
        return self._outcome(
            key, _FACTS[reading.reading], gtin=reading.gtin, reason=reason, **details
        )

    async def _backoff(self, tries: int) -> None:
        """Wait before asking again for an answer that was not understood (doubling)."""
        delay = min(self.backoff.backoff_base * 2**tries, self.backoff.backoff_max)
        if delay > 0:
            self.crawler.stats.inc_value("retry/waited_ms", round(delay * 1000))
            await asyncio.sleep(delay)

    async def parse_lookups(self, response: Response) -> AsyncIterator[Any]:
        """Each SKU of a GraphQL document (or of a product page) becomes its outcome.

        The answer is read whole (:func:`~colesbarcodes.site.coles.parse_graphql_products`):
        a SKU gets an outcome only from a reading that states a fact; one not understood is
        asked again with backoff, then ends ``failed`` (a retry file).

        Stats for the monitors' format error share: ``coles/answers_read`` counts the SKUs
        of every answer read, ``coles/site_format_errors`` those whose answer could not be
        read for its format (an unreadable answer or a refused document: all its SKUs; a
        record of the wrong shape or refused: that SKU; not the server's own errors on a
        field, ``coles/graphql/product_errors``); ``coles/answers_unreadable`` the SKUs of
        answers that were no GraphQL answer at all, or of the wrong shape.
        """
        lookups: list[LookupKey] = response.meta["lookups"]
        stats = self.crawler.stats
        stats.inc_value("coles/answers_read", len(lookups))
        answer = self.source.read(response)
        if self.source.is_fallback(response):
            async for obj in self._page_outcome(response, lookups[0], answer):
                yield obj
            return
        problem = answer.problem
        if problem is not None and problem.kind is ProblemKind.UNREADABLE:
            async for obj in self._unreadable(response, lookups, problem.message):
                yield obj
            return
        if problem is not None:
            self.source.session.answer_understood()
            async for obj in self._refused(response, lookups, problem):
                yield obj
            return
        again_now = [key for key in lookups if str(key["sku"]) in answer.ask_again]
        if again_now:
            # Another SKU's error nulled the whole document: its SKUs lost nothing but
            # their answer. Asked again at once, not counted as a try.
            stats.inc_value("coles/graphql/nulled_documents")
            yield self.source.again(response, again_now)
        spoiled: list[LookupKey] = []
        rejected: list[tuple[LookupKey, SkuReading]] = []
        understood = False
        for key in lookups:
            reading = answer.readings.get(str(key["sku"]))
            if reading is None:
                continue
            if reading.reading is not Reading.NOT_UNDERSTOOD:
                understood = True
                if reading.reading is Reading.NO_BARCODE and self.arguments.fallback_without_gtin:
                    yield self.source.fallback(response, key, reading, **self.callbacks)
                else:
                    yield self._fact(key, reading)
                continue
            if reading.unreadable:
                stats.inc_value("coles/site_format_errors")
                stats.inc_value("coles/answers_unreadable")
            elif reading.rejected:
                stats.inc_value("coles/site_format_errors")
            else:
                understood = True  # the site's own error, said in the GraphQL way
                stats.inc_value("coles/graphql/product_errors")
            if reading.rejected:
                rejected.append((key, reading))
            else:
                spoiled.append(key)
        if understood or again_now:
            self.source.session.answer_understood()
        elif spoiled:
            reasons = {answer.readings[str(key["sku"])].reason for key in spoiled}
            self._count_unreadable(response, "; ".join(sorted(reasons)))
        if rejected:
            message = "; ".join(sorted({reading.reason for _, reading in rejected}))
            for outcome in self._rejected([key for key, _ in rejected], message):
                yield outcome
            raise self._close_rejected([key for key, _ in rejected], message)
        if spoiled:
            tries = response.meta.get("coles_product_tries", 0)
            if tries < self.arguments.retry_times:
                await self._backoff(tries)
                yield self.source.again(response, spoiled, coles_product_tries=tries + 1)
            else:
                for key in spoiled:
                    stats.inc_value("coles/lookups_failed")
                    reading = answer.readings[str(key["sku"])]
                    reason = f"the site's answer for this SKU was not understood: {reading.reason}"
                    yield self._outcome(key, Outcome.FAILED, reason=reason[:300])

    def _count_unreadable(self, response: Response, seen: str) -> None:
        """One more document answered unreadably at its first try; when that keeps
        happening with no readable answer between, the crawl stops, saying what it saw (the
        SKUs not answered yet stay in the inbox for the next run). The retries of one
        document do not count: one bad document alone is split, never stops the crawl."""
        if response.meta.get("coles_document_tries", 0) or response.meta.get(
            "coles_product_tries", 0
        ):
            return
        in_a_row = self.source.session.answer_unreadable()
        if in_a_row > self.arguments.retry_times:
            logger.error(
                "The GraphQL API answered %d documents in a row with something that is no "
                "answer the crawl knows (%s). Nothing was stored for their SKUs. Run `scrapy "
                "site-check --save var/site-check` and see docs/site.md, section GraphQL.",
                in_a_row,
                seen,
            )
            raise CloseSpider(
                finish_reason(
                    Unusable.CHANGED,
                    f"GraphQL answered {in_a_row} documents in a row unreadably: {seen}",
                )
            )

    async def _unreadable(
        self, response: Response, lookups: list[LookupKey], seen: str
    ) -> AsyncIterator[Any]:
        """An answer that is no GraphQL answer: never an outcome. Asked again with backoff;
        a document that alone keeps getting one is split, down to one SKU, then failed."""
        stats = self.crawler.stats
        stats.inc_value("coles/answers_unreadable", len(lookups))
        stats.inc_value("coles/site_format_errors", len(lookups))
        logger.warning("Unreadable GraphQL answer for %d SKU(s): %s", len(lookups), seen)
        self._count_unreadable(response, seen)
        tries = response.meta.get("coles_document_tries", 0)
        if tries < self.arguments.retry_times:
            await self._backoff(tries)
            yield self.source.again(response, lookups, coles_document_tries=tries + 1)
        elif len(lookups) > 1:
            middle = len(lookups) // 2
            for half in (lookups[:middle], lookups[middle:]):
                yield self.source.again(response, half, coles_document_tries=0)
        else:
            stats.inc_value("coles/lookups_failed")
            reason = f"the site's answer was unreadable after retries: {seen}"
            yield self._outcome(lookups[0], Outcome.FAILED, reason=reason[:300])

    async def _page_outcome(
        self, response: Response, key: LookupKey, answer: GraphQLAnswer
    ) -> AsyncIterator[Any]:
        """The product page of a SKU whose record had an empty ``gtin``: it can only add a
        barcode. The API's ``no_barcode`` stands when the page shows none, is gone, or
        cannot be read after retries."""
        reading = answer.readings[str(key["sku"])]
        if reading.reading in (Reading.FOUND, Reading.INVALID_BARCODE):
            yield self._fact(key, reading)
            return
        api = self.source.api_reading(response)
        if reading.reading is not Reading.NOT_UNDERSTOOD:
            yield self._fact(key, api)
            return
        self.crawler.stats.inc_value("coles/fallback/unreadable_pages")
        tries = response.meta.get("coles_page_tries", 0)
        if tries < self.arguments.retry_times:
            await self._backoff(tries)
            yield self.source.page_again(response, coles_page_tries=tries + 1)
            return
        reason = f"{api.reason}; its product page could not be read: {reading.reason}"
        yield self._fact(key, replace(api, reason=reason[:300]))

    async def _refused(
        self, response: Response, lookups: list[LookupKey], problem: GraphQLProblem
    ) -> AsyncIterator[Any]:
        stats = self.crawler.stats
        if problem.kind is ProblemKind.TOO_COMPLEX and len(lookups) > 1:
            size = self.source.session.shrink_batch(len(lookups), problem.stated_limit)
            for start in range(0, len(lookups), size):
                yield self.source.again(response, lookups[start : start + size])
            return
        if problem.kind is ProblemKind.SERVER:
            tries = response.meta.get("coles_document_tries", 0)
            if tries < self.arguments.retry_times:
                stats.inc_value("coles/graphql/server_errors")
                await self._backoff(tries)
                yield self.source.again(response, lookups, coles_document_tries=tries + 1)
                return
            for key in lookups:
                stats.inc_value("coles/lookups_failed")
                yield self._outcome(
                    key,
                    Outcome.FAILED,
                    reason=f"GraphQL error after retries: {problem.message}"[:300],
                )
            return
        stats.inc_value("coles/site_format_errors", len(lookups))
        for outcome in self._rejected(lookups, problem.message):
            yield outcome
        raise self._close_rejected(lookups, problem.message)

    def _rejected(self, lookups: list[LookupKey], message: str) -> list[BarcodeLookup]:
        """``failed`` for SKUs of a refused document: to the retry file, never a fact."""
        self.crawler.stats.inc_value("coles/lookups_failed", len(lookups))
        reason = f"GraphQL refused the document: {message}"[:300]
        return [self._outcome(key, Outcome.FAILED, reason=reason) for key in lookups]

    def _close_rejected(self, lookups: list[LookupKey], message: str) -> CloseSpider:
        """Validation, bad input or "Invalid StoreId", for the document or one of its SKUs:
        the site's contract is not the one this crawl knows, or a store id is not the
        site's. Asking again cannot help: the crawl stops, naming the store."""
        self.crawler.stats.inc_value("coles/graphql/rejected")
        stores = sorted({str(key.get("store_id")) for key in lookups})
        logger.error(
            "The site refused the GetProductDetails document for store %s (%s): its GraphQL "
            "API has changed, or the store id is not one of the site's. See docs/site.md, "
            "section GraphQL.",
            ", ".join(stores),
            message,
        )
        return CloseSpider(
            finish_reason(
                Unusable.CHANGED,
                f"GraphQL refused GetProductDetails (store {', '.join(stores)}): {message}",
            )
        )

    def lookup_failed(self, failure: Failure) -> Any:
        """A request that failed after the downloader's retries: its SKUs end ``failed``
        (retry file), never with a fact. A document that keeps failing is split first."""
        request = failure.request  # type: ignore[attr-defined]
        response = getattr(failure.value, "response", None)
        lookups: list[LookupKey] = request.meta["lookups"]
        if failure.check(BrowserUnavailable):
            # This machine's browser, not the SKUs: no outcome, they stay for the next run
            # (the crawl is closing with the reason).
            return
        reason = (
            f"{failure.type.__name__}: {failure.getErrorMessage()}"[:300]
            if failure.type
            else "failed"
        )
        if response is not None:
            reason = f"HTTP {response.status} after retries"
        if self.source.is_fallback(request):
            # The product page could only have added a barcode: the API's answer stands.
            self.crawler.stats.inc_value("coles/fallback/unreadable_pages")
            api = self.source.api_reading(request)
            why = f"{api.reason}; its product page could not be read: {reason}"
            yield self._fact(lookups[0], replace(api, reason=why[:300]))
            return
        if len(lookups) > 1 and response is not None and response.status >= 500:
            # A document that keeps failing may fail for one of its SKUs: ask for each half
            # on its own, so that only the SKU at fault ends as failed.
            self.crawler.stats.inc_value("coles/graphql/document_split_failed")
            middle = len(lookups) // 2
            for half in (lookups[:middle], lookups[middle:]):
                yield self.source.again(response, half)
            return
        for key in lookups:
            self.crawler.stats.inc_value("coles/lookups_failed")
            yield self._outcome(key, Outcome.FAILED, reason=reason)


_FACTS = {
    Reading.FOUND: Outcome.FOUND,
    Reading.NO_BARCODE: Outcome.NO_BARCODE,
    Reading.NOT_FOUND: Outcome.NOT_FOUND,
    Reading.INVALID_BARCODE: Outcome.INVALID_BARCODE,
}
