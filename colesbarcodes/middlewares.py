"""Crawl middlewares: prefill from the database, the bot check, and polite retries."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import scrapy
from scrapy import signals
from scrapy.downloadermiddlewares.retry import RetryMiddleware
from scrapy.exceptions import NotConfigured
from scrapy.spidermiddlewares.base import BaseSpiderMiddleware

from colesbarcodes.coles_site import is_bot_check
from colesbarcodes.db.engine import make_engine, with_retries
from colesbarcodes.db.lookups import known_barcodes, recent_outcomes
from colesbarcodes.items import BarcodeLookup, Outcome

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping
    from typing import Self

    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from scrapy.settings import BaseSettings
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session

__all__ = ["BotCheckMiddleware", "PrefillMiddleware", "PrefillUnit", "RetryAfterMiddleware"]

logger = logging.getLogger(__name__)


class _FileKnowledge:
    """What the database knows about the SKUs of one inbox file, loaded in bulk."""

    def __init__(
        self,
        known: dict[str, str],
        recent: dict[str, tuple[str, datetime]],
        stored: dict[str, str],
    ) -> None:
        self.known, self.recent, self.stored = known, recent, stored


class PrefillUnit(Protocol):
    """SKUs the spider hands out together: an inbox file, or a batch taken from the shared
    frontier. The prefill loads what the database knows about them in one go."""

    @property
    def label(self) -> str: ...  # for the log

    @property
    def log_level(self) -> int: ...

    @property
    def skus(self) -> Mapping[str, Any]: ...

    def stored(self, session: Session) -> dict[str, str]:
        """SKU → outcome an earlier run (or a dead worker) already stored for this unit."""
        ...


class PrefillMiddleware(BaseSpiderMiddleware):
    """Answers SKUs whose barcode is already known before any request leaves.

    For each unit of SKUs (an inbox file, or a frontier batch: meta ``batch`` or ``file``,
    resolved by the spider's ``work_unit()``), one bulk query loads the barcodes of exactly
    that unit's SKUs (not one query per SKU, not every product of the company), plus the
    SKUs that had no barcode within the re-check age and the SKUs whose outcome an earlier
    run already stored for it (a resumed file; a frontier SKU taken back from a dead
    worker). Those SKUs become items (marked prefilled) instead of requests. Stats:
    ``prefill/loaded``, ``prefill/skipped``, ``prefill/missing``,
    ``prefill/recently_checked``, ``prefill/resumed``.
    """

    def __init__(self, crawler: Crawler, database_url: str, recheck: timedelta) -> None:
        super().__init__(crawler)
        self.database_url = database_url
        self.recheck = recheck
        self.engine: Engine | None = None
        self.current: tuple[str, _FileKnowledge] | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        if not crawler.settings.getbool("PREFILL_ENABLED"):
            raise NotConfigured
        days = crawler.settings.getfloat("COLES_RECHECK_DAYS")
        middleware = cls(crawler, crawler.settings.get("DATABASE_URL"), timedelta(days=days))
        crawler.signals.connect(middleware.close, signal=signals.spider_closed)
        return middleware

    def _load(self, unit: PrefillUnit) -> _FileKnowledge:
        if self.engine is None:
            self.engine = make_engine(self.database_url)
        skus = list(unit.skus)
        since = datetime.now(UTC) - self.recheck
        company = self.crawler.spider.company  # type: ignore[union-attr]

        def load(session: Session) -> _FileKnowledge:
            return _FileKnowledge(
                known_barcodes(session, company, skus),
                recent_outcomes(session, company, skus, since) if self.recheck else {},
                unit.stored(session),
            )

        return with_retries(self.engine, load, what="Loading the prefill map")

    async def _knowledge(self, key: str) -> _FileKnowledge:
        if self.current is None or self.current[0] != key:
            unit = self.crawler.spider.work_unit(key)  # type: ignore[union-attr]
            started = time.monotonic()
            knowledge = await asyncio.to_thread(self._load, unit)
            self.current = (key, knowledge)
            self.crawler.stats.inc_value("prefill/loaded", len(knowledge.known))
            logger.log(
                unit.log_level,
                "Prefill for %s: %d of %d SKUs known, %d recently without barcode, "
                "%d already stored (%.2fs)",
                unit.label,
                len(knowledge.known),
                len(unit.skus),
                len(knowledge.recent),
                len(knowledge.stored),
                time.monotonic() - started,
            )
        return self.current[1]

    async def process_start(self, start: AsyncIterator[Any]) -> AsyncIterator[Any]:
        stats = self.crawler.stats
        if stats is None:
            raise RuntimeError("the crawler has no stats collector")
        async for obj in start:
            if isinstance(obj, scrapy.Request):
                key, sku = obj.meta.get("batch") or obj.meta.get("file"), obj.meta.get("sku")
            elif isinstance(obj, BarcodeLookup):
                key, sku = obj.batch or obj.file, obj.sku
            else:
                key = sku = None
            if key is None or sku is None:
                yield obj
                continue
            knowledge = await self._knowledge(key)
            sku = str(sku)
            if sku in knowledge.stored:
                stats.inc_value("prefill/resumed")
                if isinstance(obj, BarcodeLookup):
                    obj.stored = True
                    yield obj
                else:
                    yield self._item(obj, Outcome(knowledge.stored[sku]), stored=True)
                continue
            if not isinstance(obj, scrapy.Request):
                yield obj
                continue
            if sku in knowledge.known:
                stats.inc_value("prefill/skipped")
                yield self._item(obj, Outcome.PREFILLED, barcode=knowledge.known[sku])
            elif sku in knowledge.recent:
                outcome, at = knowledge.recent[sku]
                stats.inc_value("prefill/recently_checked")
                yield self._item(
                    obj, Outcome.RECENTLY_CHECKED, reason=f"{outcome} at {at:%Y-%m-%d %H:%M}"
                )
            else:
                stats.inc_value("prefill/missing")
                yield obj

    def _item(self, request: scrapy.Request, outcome: Outcome, **fields: Any) -> BarcodeLookup:
        return BarcodeLookup(
            sku=str(request.meta["sku"]),
            outcome=outcome,
            company=self.crawler.spider.company,  # type: ignore[union-attr]
            store_id=request.meta.get("store_id"),
            file=request.meta.get("file"),
            batch=request.meta.get("batch"),
            **fields,
        )

    def close(self) -> None:
        if self.engine is not None:
            self.engine.dispose()


class BotCheckMiddleware:
    """Solves the site's JavaScript bot check once, in a real browser, then goes on with
    plain HTTP carrying the browser's cookies and user agent.

    A response that is the bot-check page (whatever its status) makes one browser page
    (scrapy-playwright) open the site, run the check's script and hand over its cookies;
    requests waiting meanwhile share that one solution. At most
    ``COLES_BOTCHECK_MAX_BROWSER_PAGES`` browser pages per crawl. Stats: ``botcheck/*``.
    """

    def __init__(self, crawler: Crawler, max_pages: int, timeout: float) -> None:
        self.crawler = crawler
        self.max_pages = max_pages
        self.timeout = timeout
        self.generation = 0  # increases with every solution
        self.cookies: list[dict[str, Any]] = []
        self.user_agent: str | None = None
        self.pages = 0
        self._solving: asyncio.Future[bool] | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        settings = crawler.settings
        if not settings.getbool("COLES_BOTCHECK_ENABLED"):
            raise NotConfigured
        return cls(
            crawler,
            settings.getint("COLES_BOTCHECK_MAX_BROWSER_PAGES"),
            settings.getfloat("COLES_BOTCHECK_TIMEOUT"),
        )

    def process_request(self, request: scrapy.Request) -> None:
        if request.meta.get("playwright"):
            return
        request.meta.setdefault("botcheck_generation", self.generation)
        if self.user_agent:
            request.headers["User-Agent"] = self.user_agent

    async def process_response(self, request: scrapy.Request, response: Response) -> Any:
        if request.meta.get("playwright") or not is_bot_check(response.body):
            return response
        stats = self.crawler.stats
        if stats is None:
            raise RuntimeError("the crawler has no stats collector")
        stats.inc_value("botcheck/detected")
        tries = request.meta.get("botcheck_tries", 0)
        if tries >= 2:
            stats.inc_value("botcheck/gave_up")
            logger.warning("Still the bot check after solving it: giving up on %s", request)
            return response
        if request.meta.get("botcheck_generation", 0) >= self.generation and not await self._solve(
            request
        ):
            return response
        retry = request.replace(
            dont_filter=True,
            cookies=self.cookies,
            meta={
                **request.meta,
                "botcheck_tries": tries + 1,
                "botcheck_generation": self.generation,
            },
        )
        if self.user_agent:
            retry.headers["User-Agent"] = self.user_agent
        return retry

    async def _solve(self, request: scrapy.Request) -> bool:
        if self._solving is not None:
            return await asyncio.shield(self._solving)
        if self.pages >= self.max_pages:
            self.crawler.stats.inc_value("botcheck/over_budget")
            logger.error(
                "Bot check met again but the browser budget (%d pages) is spent", self.max_pages
            )
            return False
        self._solving = asyncio.get_running_loop().create_future()
        try:
            solved = await self._solve_in_browser(request)
        except Exception:
            logger.exception("Solving the bot check in the browser failed")
            solved = False
        self._solving.set_result(solved)
        self._solving = None
        return solved

    async def _solve_in_browser(self, request: scrapy.Request) -> bool:
        stats = self.crawler.stats
        if stats is None:
            raise RuntimeError("the crawler has no stats collector")
        if self.crawler.engine is None:
            raise RuntimeError("the crawler is not running")
        # An HTML page can be opened as it is; for an API call, open the site's home page.
        url = request.url if request.method == "GET" else _home(request.url, self.crawler)
        self.pages += 1
        stats.inc_value("botcheck/browser_pages")
        started = time.monotonic()
        response = await self.crawler.engine.download_async(
            scrapy.Request(
                url,
                dont_filter=True,
                meta={
                    "playwright": True,
                    "playwright_include_page": True,
                    "playwright_context": "botcheck",
                },
            )
        )
        page = response.meta["playwright_page"]
        try:
            deadline = started + self.timeout
            cookies: list[dict[str, Any]] = []
            while time.monotonic() < deadline:
                cookies = await page.context.cookies()
                if any(c["name"].startswith("reese84") for c in cookies):
                    break
                await asyncio.sleep(0.2)
            else:
                logger.error("The bot check did not set its cookie within %.0fs", self.timeout)
                stats.inc_value("botcheck/unsolved")
                return False
            self.user_agent = await page.evaluate("() => navigator.userAgent")
        finally:
            await page.close()
        self.cookies = [
            {
                "name": c["name"],
                "value": c["value"],
                "domain": c["domain"],
                "path": c.get("path", "/"),
            }
            for c in cookies
        ]
        self.generation += 1
        stats.inc_value("botcheck/solved")
        logger.info(
            "Bot check solved in the browser in %.1fs: %d cookies, continuing over plain HTTP",
            time.monotonic() - started,
            len(self.cookies),
        )
        return True


def _home(url: str, crawler: Crawler) -> str:
    base = getattr(crawler.spider, "base_url", None)
    if base:
        return f"{base}/"
    parts = url.split("/", 3)
    return "/".join(parts[:3]) + "/"


class RetryAfterMiddleware(RetryMiddleware):
    """Scrapy's retries, with backoff: waits ``Retry-After`` (429/503) when the site says
    how long, else exponentially longer on each retry, before retrying.

    Settings: ``RETRY_BACKOFF_BASE`` (seconds, first wait), ``RETRY_BACKOFF_MAX`` and
    ``RETRY_AFTER_MAX`` (caps). Stats: ``retry/waited_ms``.
    """

    def __init__(self, settings: BaseSettings) -> None:
        super().__init__(settings)
        self.backoff_base = settings.getfloat("RETRY_BACKOFF_BASE")
        self.backoff_max = settings.getfloat("RETRY_BACKOFF_MAX")
        self.retry_after_max = settings.getfloat("RETRY_AFTER_MAX")

    def _delay(self, request: scrapy.Request, response: Response | None) -> float:
        if response is not None:
            header = response.headers.get(b"Retry-After")
            if header:
                seconds = _retry_after_seconds(header.decode("latin-1"))
                if seconds is not None:
                    return min(max(seconds, 0.0), self.retry_after_max)
        retries = request.meta.get("retry_times", 0)
        return min(self.backoff_base * 2**retries, self.backoff_max)

    async def _wait_then_retry(
        self, request: scrapy.Request, reason: Any, response: Response | None
    ) -> scrapy.Request | None:
        retry = self._retry(request, reason)
        if retry is not None:
            delay = self._delay(request, response)
            if delay > 0:
                self.crawler.stats.inc_value("retry/waited_ms", round(delay * 1000))
                await asyncio.sleep(delay)
        return retry

    async def process_response(self, request: scrapy.Request, response: Response) -> Any:  # type: ignore[override]
        if request.meta.get("dont_retry", False) or response.status not in self.retry_http_codes:
            return response
        from scrapy.utils.response import response_status_message

        retry = await self._wait_then_retry(
            request, response_status_message(response.status), response
        )
        return retry or response

    async def process_exception(self, request: scrapy.Request, exception: Exception) -> Any:  # type: ignore[override]
        if isinstance(exception, self.exceptions_to_retry) and not request.meta.get(
            "dont_retry", False
        ):
            return await self._wait_then_retry(request, exception, None)
        return None


def _retry_after_seconds(value: str) -> float | None:
    """``Retry-After`` as seconds: a number of seconds or an HTTP date."""
    value = value.strip()
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - datetime.now(UTC)).total_seconds()
