"""``scrapy crawl coles_barcodes``: look up the barcodes of the SKUs in the enrichment inbox.

Files are taken one at a time, oldest first, until the inbox is empty (files arriving
during the crawl are taken too). The :class:`~colesbarcodes.middlewares.prefill.PrefillMiddleware`
answers SKUs whose barcode is already known before any request leaves; the rest are
looked up through :class:`~colesbarcodes.site.source.GraphQLBarcodeSource`; every outcome is
stored by :class:`~colesbarcodes.pipelines.barcode_upsert.BarcodeUpsertPipeline`; the inbox
files' life (claim, accounting, finishing, retry and spill files, releasing claims) is
:class:`~colesbarcodes.extensions.enrichment_files.EnrichmentFiles`'s work.

With ``COLES_FRONTIER_URL`` (or ``-a frontier=redis://...``) the SKUs come instead from
the shared frontier in Redis, which ``coles-loader frontier feed`` fills from the inbox:
several crawl processes, on one machine or many, then share the work
(:mod:`colesbarcodes.frontier.worker`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import scrapy
from scrapy.exceptions import CloseSpider

from colesbarcodes.config import (
    ConfigurationError,
    argument_int,
    setting_bool,
    setting_int,
    setting_str,
)
from colesbarcodes.extensions.enrichment_files import EnrichmentFiles
from colesbarcodes.extensions.site_session import SiteUnusable
from colesbarcodes.frontier.stream import redact_url
from colesbarcodes.frontier.worker import FrontierBatch, FrontierWorker
from colesbarcodes.gtin import InvalidGtin, parse_gtin, shown
from colesbarcodes.items import BarcodeLookup, Outcome
from colesbarcodes.signals import work_unit_taken
from colesbarcodes.site.browser import BrowserUnavailable
from colesbarcodes.site.coles import ProblemKind
from colesbarcodes.site.source import GraphQLBarcodeSource, LookupKey, SourceError
from colesbarcodes.spiders.arguments import (
    argument_or_setting,
    arguments_as_settings,
    folder_value,
    http_url,
    named,
    refuse_unknown_arguments,
)
from colesbarcodes.spiders.store_walk import store_id

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping
    from typing import Self

    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from scrapy.settings import BaseSettings
    from twisted.python.failure import Failure

    from colesbarcodes.gtin import Gtin
    from colesbarcodes.site.coles import GraphQLProblem, ProductRecord

logger = logging.getLogger(__name__)

ARGUMENTS = ("base_url", "frontier", "inbox", "limit", "store")
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


@dataclass(frozen=True)
class BarcodesArguments:
    """What the barcode crawl is asked to do: each spider argument given, else its setting.

    ``base_url`` (COLES_BASE_URL), ``default_store`` (argument ``store``, COLES_STORE_ID:
    for lines without a store), ``limit`` (COLES_MAX_SKUS: SKUs taken at most, 0 for no
    limit), ``frontier_url`` (argument ``frontier``, COLES_FRONTIER_URL: empty for the
    inbox), and the settings only: ``fallback_without_gtin`` (COLES_PRODUCT_PAGE_FALLBACK),
    ``retry_times`` (RETRY_TIMES) and ``job`` (COLES_JOB, scrapyd's ``_job``).
    """

    base_url: str
    default_store: str
    limit: int = 0
    frontier_url: str = ""
    fallback_without_gtin: bool = False
    retry_times: int = 4
    job: str | None = None

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
        if frontier_url and not frontier_url.startswith(REDIS_SCHEMES):
            raise ConfigurationError(
                f"{named(given, 'frontier', 'COLES_FRONTIER_URL')} must be a Redis URL, "
                f"redis://[:password@]host:6379/0, not {shown(redact_url(frontier_url))}"
            )
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
            job=setting_str(settings, "COLES_JOB") or None,
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
    }
    arguments: BarcodesArguments
    base_url: str
    default_store: str
    limit: int
    inbox_files: EnrichmentFiles
    fallback_without_gtin: bool
    source: GraphQLBarcodeSource
    retry_times: int
    frontier: FrontierWorker | None

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
        self.seen: set[str] = set()
        self.reading_done = False
        # One bound-method object per callback for all requests: Scrapy caches its
        # per-callback source inspection by object, and a fresh bound method per request
        # would make it parse this module's source again for every response.
        self.callbacks = {"callback": self.parse_lookups, "errback": self.lookup_failed}

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> ColesBarcodesSpider:
        spider: ColesBarcodesSpider = super().from_crawler(crawler, *args, **kwargs)
        given = spider._arguments
        arguments_as_settings(crawler, spider, given, {"inbox": "COLES_ENRICHMENT_INBOX"})
        arguments = BarcodesArguments.from_settings(crawler.settings, given)
        spider.arguments = arguments
        spider.base_url = arguments.base_url
        spider.default_store = arguments.default_store
        spider.limit = arguments.limit
        spider.fallback_without_gtin = arguments.fallback_without_gtin
        spider.retry_times = arguments.retry_times
        spider.source = GraphQLBarcodeSource(spider.base_url, crawler)
        spider.frontier = (
            FrontierWorker.from_crawler(crawler, arguments.frontier_url, arguments.job)
            if arguments.frontier_url
            else None
        )
        return spider

    async def start(self) -> AsyncIterator[Any]:
        if self.frontier is not None:
            async for obj in self._from_frontier(self.frontier):
                yield obj
            return
        files = self.crawler.get_extension(EnrichmentFiles)
        if files is None:
            raise CloseSpider("COLES_ENRICHMENT_FILES is off: this spider has no inbox to read")
        if not files.has_work():
            logger.info("The inbox %s is empty: nothing to look up", files.inbox.inbox.root)
            self.reading_done = True
            return
        try:
            await self.source.configure()
        except SiteUnusable as exc:
            raise CloseSpider(str(exc)) from None
        taken = 0
        while (job := files.claim_next()) is not None:
            for sku, line in job.skus.items():
                if self.limit and taken >= self.limit:
                    break
                taken += 1
                base = BarcodeLookup(
                    sku=sku,
                    outcome=Outcome.FOUND,
                    company=self.company,
                    store_id=line.store_id,
                    file=job.name,
                )
                if sku in self.seen:
                    base.outcome, base.reason = (
                        Outcome.DUPLICATE,
                        "looked up for an earlier file of this crawl",
                    )
                    yield base
                    continue
                self.seen.add(sku)
                if line.barcode is not None:
                    base.gtin, base.barcode, base.name, base.brand, base.size = (
                        line.barcode,
                        line.barcode.code,
                        line.name,
                        line.brand,
                        line.size,
                    )
                    base.reason = "barcode given in the inbox file"
                    yield base
                    continue
                yield self.source.request(
                    sku, line.store_id or self.default_store, {"file": job.name}, **self.callbacks
                )
            if self.limit and taken >= self.limit:
                logger.info("Reached the limit of %d SKUs", self.limit)
                break
        self.reading_done = True

    async def _from_frontier(self, worker: FrontierWorker) -> AsyncIterator[Any]:
        """SKUs from the shared frontier, a batch at a time, until it is drained."""
        await worker.open()
        try:
            await self.source.configure()
        except SiteUnusable as exc:
            raise CloseSpider(str(exc)) from None
        number = 0
        async for entries in worker.batches(self.limit):
            number += 1
            key = f"{worker.consumer}#{number}"
            batch = FrontierBatch(key, self.company, {e.sku: e.file for e in entries})
            self.crawler.signals.send_catch_log(work_unit_taken, unit=batch)
            for entry in entries:
                base = BarcodeLookup(
                    sku=entry.sku,
                    outcome=Outcome.FOUND,
                    company=self.company,
                    store_id=entry.store_id,
                    file=entry.file,
                    batch=key,
                )
                if worker.max_deliveries and entry.deliveries > worker.max_deliveries:
                    self.crawler.stats.inc_value("frontier/given_up")
                    base.outcome = Outcome.FAILED
                    base.reason = (
                        f"handed out {entry.deliveries - 1} times without a stored outcome"
                    )
                    yield base
                    continue
                given = _valid_gtin(entry.barcode)  # checked when fed; a bad one is asked
                if given is not None:
                    base.gtin, base.barcode, base.name, base.brand, base.size = (
                        given,
                        given.code,
                        entry.name,
                        entry.brand,
                        entry.size,
                    )
                    base.reason = "barcode given in the inbox file"
                    yield base
                    continue
                yield self.source.request(
                    entry.sku,
                    entry.store_id or self.default_store,
                    {"file": entry.file, "batch": key},
                    **self.callbacks,
                )
        self.reading_done = True

    def _outcome(self, key: LookupKey, outcome: Outcome, **fields: Any) -> BarcodeLookup:
        return BarcodeLookup(
            sku=str(key["sku"]),
            outcome=outcome,
            company=self.company,
            store_id=key.get("store_id"),
            file=key.get("file"),
            batch=key.get("batch"),
            **fields,
        )

    def parse_lookups(self, response: Response) -> Any:
        """Each SKU of a GraphQL document (or of a product page) becomes its outcome.

        Stats for the monitors' format error share: ``coles/answers_read`` counts the SKUs
        of every answer read, ``coles/site_format_errors`` those whose answer could not be
        read for its format (an unreadable answer or a refused document: all its SKUs; an
        error on one product: that SKU).
        """
        lookups: list[LookupKey] = response.meta["lookups"]
        stats = self.crawler.stats
        stats.inc_value("coles/answers_read", len(lookups))
        try:
            answer = self.source.read(response)
        except SourceError as exc:
            stats.inc_value("coles/site_format_errors", len(lookups))
            if not self.source.is_fallback(response):
                self.crawler.stats.inc_value("coles/fallback/unusable_api_answer", len(lookups))
                logger.warning(
                    "Unusable API answer for %d SKU(s) (%s): trying their product pages",
                    len(lookups),
                    exc,
                )
                for key in lookups:
                    yield self.source.fallback(response, key, **self.callbacks)
                return
            yield self._outcome(lookups[0], Outcome.FAILED, reason=f"unreadable answer: {exc}")
            return
        if answer.problem is not None:
            yield from self._refused(response, lookups, answer.problem)
            return
        spoiled: list[LookupKey] = []
        for key in lookups:
            sku = str(key["sku"])
            if sku in answer.not_found:
                yield self._outcome(key, Outcome.NOT_FOUND, reason="the site has no such product")
            elif sku in answer.errors:
                stats.inc_value("coles/graphql/product_errors")
                stats.inc_value("coles/site_format_errors")
                spoiled.append(key)
            else:
                yield from self._record_outcome(response, key, answer.records[sku])
        if spoiled:
            tries = response.meta.get("coles_product_tries", 0)
            if tries < self.retry_times:
                yield self.source.again(response, spoiled, coles_product_tries=tries + 1)
            else:
                for key in spoiled:
                    self.crawler.stats.inc_value("coles/lookups_failed")
                    reason = f"the site's answer for this SKU kept failing: {answer.errors[str(key['sku'])]}"
                    yield self._outcome(key, Outcome.FAILED, reason=reason[:300])

    def _refused(
        self, response: Response, lookups: list[LookupKey], problem: GraphQLProblem
    ) -> Any:
        stats = self.crawler.stats
        if problem.kind is ProblemKind.TOO_COMPLEX and len(lookups) > 1:
            size = self.source.session.shrink_batch(len(lookups), problem.stated_limit)
            for start in range(0, len(lookups), size):
                yield self.source.again(response, lookups[start : start + size])
            return
        if problem.kind is ProblemKind.SERVER:
            tries = response.meta.get("coles_document_tries", 0)
            if tries < self.retry_times:
                stats.inc_value("coles/graphql/server_errors")
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
        # Validation or bad input: the site's schema is not the one this crawl knows. Asking
        # again cannot help: the SKUs go to the retry file and the crawl stops, saying why.
        stats.inc_value("coles/graphql/rejected")
        stats.inc_value("coles/site_format_errors", len(lookups))
        for key in lookups:
            yield self._outcome(
                key, Outcome.FAILED, reason=f"GraphQL refused the document: {problem.message}"[:300]
            )
        logger.error(
            "The site refused the GetProductDetails document (%s): its GraphQL API has changed. "
            "See docs/site.md, section GraphQL.",
            problem.message,
        )
        raise CloseSpider(
            f"site_changed: GraphQL refused GetProductDetails: {problem.message}"[:500]
        )

    def _record_outcome(self, response: Response, key: LookupKey, record: ProductRecord) -> Any:
        details = {"name": record.name, "brand": record.brand, "size": record.size}
        try:
            gtin = parse_gtin(record.gtin)
        except InvalidGtin as exc:
            yield self._outcome(
                key,
                Outcome.INVALID_BARCODE,
                raw_barcode=str(record.gtin),
                reason=exc.reason,
                **details,
            )
            return
        if gtin is None:
            if self.fallback_without_gtin and not self.source.is_fallback(response):
                yield self.source.fallback(response, key, **self.callbacks)
                return
            reason = (
                "the product record has no gtin"
                if record.has_gtin_field
                else "the product record has no gtin field"
            )
            yield self._outcome(key, Outcome.NO_BARCODE, reason=reason, **details)
            return
        yield self._outcome(key, Outcome.FOUND, gtin=gtin, raw_barcode=str(record.gtin), **details)

    def lookup_failed(self, failure: Failure) -> Any:
        request = failure.request  # type: ignore[attr-defined]
        response = getattr(failure.value, "response", None)
        lookups: list[LookupKey] = request.meta["lookups"]
        if failure.check(BrowserUnavailable):
            # This machine's browser, not the SKUs: no outcome, they stay for the next run
            # (the crawl is closing with the reason).
            return
        if response is not None and response.status == 404 and self.source.is_fallback(response):
            yield self._outcome(lookups[0], Outcome.NOT_FOUND, reason="no product page")
            return
        if len(lookups) > 1 and response is not None and response.status >= 500:
            # A document that keeps failing may fail for one of its SKUs: ask for each half
            # on its own, so that only the SKU at fault ends as failed.
            self.crawler.stats.inc_value("coles/graphql/failed_document_split")
            middle = len(lookups) // 2
            for half in (lookups[:middle], lookups[middle:]):
                yield self.source.again(response, half)
            return
        reason = (
            f"{failure.type.__name__}: {failure.getErrorMessage()}"[:300]
            if failure.type
            else "failed"
        )
        if response is not None:
            reason = f"HTTP {response.status} after retries"
        for key in lookups:
            self.crawler.stats.inc_value("coles/lookups_failed")
            yield self._outcome(key, Outcome.FAILED, reason=reason)


def _valid_gtin(value: str | None) -> Gtin | None:
    try:
        return parse_gtin(value) if value else None
    except InvalidGtin:
        return None
