"""Crawl middlewares: prefill from the database, batched lookups, the API key, the site's
protection (challenge and block page) with exits, and polite retries."""

from __future__ import annotations

import asyncio
import contextlib
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

from colesbarcodes.coles_site import PROTECTION_BLOCK, PROTECTION_CHALLENGE, protection_kind
from colesbarcodes.db.engine import make_engine, with_retries
from colesbarcodes.db.lookups import known_barcodes, recent_outcomes
from colesbarcodes.exits import BlockedByProtection, Exit, exits_from_setting
from colesbarcodes.items import BarcodeLookup, Outcome
from colesbarcodes.session import SiteSession
from colesbarcodes.sources import merge_lookup_requests

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping
    from typing import Self

    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from scrapy.settings import BaseSettings
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session

__all__ = [
    "ApiKeyMiddleware",
    "BotCheckMiddleware",
    "ExitPoolMiddleware",
    "LookupBatchMiddleware",
    "PrefillMiddleware",
    "PrefillUnit",
    "RetryAfterMiddleware",
]

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


class LookupBatchMiddleware(BaseSpiderMiddleware):
    """Merges the one-SKU lookup requests that pass the prefill into GraphQL documents of up
    to ``SiteSession.batch_size`` SKUs of one store (aliases), so a request resolves many SKUs.

    It sits after the prefill, so only SKUs that need the site are batched. A partial batch
    leaves when the start stream pauses for ``COLES_GRAPHQL_BATCH_WAIT`` seconds (a frontier
    waiting for acknowledgements never waits for its own SKUs) or ends. Stats:
    ``coles/graphql/documents``, ``coles/graphql/skus``.
    """

    def __init__(self, crawler: Crawler, wait: float) -> None:
        super().__init__(crawler)
        self.wait = wait

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler, crawler.settings.getfloat("COLES_GRAPHQL_BATCH_WAIT"))

    def _size(self) -> int:
        session = self.crawler.get_extension(SiteSession)
        return session.batch_size if session is not None else 1

    @staticmethod
    def _batchable(obj: Any) -> bool:
        return (
            isinstance(obj, scrapy.Request)
            and obj.meta.get("coles_source") == "graphql"
            and len(obj.meta.get("lookups") or ()) == 1
        )

    def _merged(self, group: list[scrapy.Request]) -> scrapy.Request:
        stats = self.crawler.stats
        stats.inc_value("coles/graphql/documents")
        stats.inc_value("coles/graphql/skus", len(group))
        return merge_lookup_requests(group)

    async def process_start(self, start: AsyncIterator[Any]) -> AsyncIterator[Any]:
        groups: dict[tuple[str, str], list[scrapy.Request]] = {}
        iterator = aiter(start)
        upcoming: asyncio.Future[Any] | None = None
        try:
            while True:
                if upcoming is None:
                    upcoming = asyncio.ensure_future(anext(iterator))
                if groups:
                    done, _ = await asyncio.wait({upcoming}, timeout=self.wait)
                    if not done:  # the stream pauses: send what waits
                        for group in groups.values():
                            yield self._merged(group)
                        groups.clear()
                        continue
                try:
                    obj = await upcoming
                except StopAsyncIteration:
                    break
                finally:
                    upcoming = None
                if not self._batchable(obj):
                    yield obj
                    continue
                key = (str(obj.meta["lookups"][0].get("store_id")), obj.url)
                group = groups.setdefault(key, [])
                group.append(obj)
                if len(group) >= self._size():
                    yield self._merged(groups.pop(key))
            for group in groups.values():
                yield self._merged(group)
        finally:
            if upcoming is not None and not upcoming.done():
                upcoming.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await upcoming


class ApiKeyMiddleware:
    """Sends the current subscription key with every API request, and follows its rotation.

    A 401 makes the :class:`~colesbarcodes.session.SiteSession` read the home page again
    (once for all requests refused together) and the request is sent again with the new
    key. If the page, read again, still publishes the very key just refused, the site
    refuses what it publishes: the crawl closes with ``key_refused`` (exit status documented in
    ``colesbarcodes.commands.crawl``); the request's SKUs are recorded as failed. Stats:
    ``coles/key/refused_401``, ``coles/key/refreshed``.
    """

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.closing = False
        self._closing: asyncio.Future[None] | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    @property
    def session(self) -> SiteSession:
        session = self.crawler.get_extension(SiteSession)
        if session is None:
            raise RuntimeError("the SiteSession extension is not enabled (EXTENSIONS)")
        return session

    def process_request(self, request: scrapy.Request) -> None:
        if not request.meta.get("coles_api"):
            return
        session = self.session
        if session.config is not None:
            request.headers["ocp-apim-subscription-key"] = session.config.api_key
            request.meta["coles_api_key"] = session.config.api_key
        request.meta["coles_key_generation"] = session.generation

    async def process_response(self, request: scrapy.Request, response: Response) -> Any:
        if response.status != 401 or not request.meta.get("coles_api"):
            return response
        stats = self.crawler.stats
        stats.inc_value("coles/key/refused_401")
        session = self.session
        used = request.meta.get("coles_api_key")
        refusals = request.meta.get("coles_key_refusals", 0) + 1
        # Another request has read a new key meanwhile: send this one again with it. Else
        # read the home page (once for all the requests refused together): a new key there
        # means it rotated; the very key just refused means the site refuses what it
        # publishes, and asking again cannot help.
        if session.config is None or session.config.api_key == used:
            await session.refresh(request.meta.get("coles_key_generation", 0))
        fresh = session.config is not None and session.config.api_key != used
        if fresh and refusals <= 10:
            return request.replace(
                dont_filter=True, meta={**request.meta, "coles_key_refusals": refusals}
            )
        if not self.closing and self.crawler.engine is not None:
            self.closing = True
            logger.error(
                "The site refused the subscription key its home page publishes, read again "
                "after a first refusal: closing the crawl (see docs/site.md, section Key)"
            )
            self._closing = asyncio.ensure_future(
                _close_crawl(
                    self.crawler,
                    "key_refused: the site refuses the subscription key its home page publishes",
                )
            )
        return response


class ExitPoolMiddleware:
    """Every request of the crawl, the browser's included, leaves through the current exit
    (``COLES_PROXIES``, else direct), and answers the block page by moving on.

    Imperva's block page (``samples/incapsula_block_page.html``) or a 403 is a verdict on the
    client's address: no browser is opened for it. With several exits the crawl moves to the
    next one not yet blocked and asks again there; otherwise (or when every exit is blocked)
    it waits, longer each time (``COLES_BLOCK_BACKOFF``, doubling), at most
    ``COLES_BLOCK_MAX_RETRIES`` times, then closes with the finish reason ``blocked: ...``
    that names the remedy; the request's SKUs are recorded as failed (retry file).
    An exit also changes after ``COLES_EXIT_MAX_FAILURES`` connection failures in a row.
    Cookies earned on an exit are used only on it (one cookie jar per exit). Stats:
    ``botcheck/block``, ``proxy/rotated``, ``proxy/failures``, ``block/waited_ms``.
    """

    def __init__(
        self,
        crawler: Crawler,
        exits: list[Exit],
        max_retries: int,
        backoff: float,
        backoff_max: float,
        max_failures: int,
    ) -> None:
        self.crawler = crawler
        self.exits = exits
        self.current = 0
        self.blocked: set[int] = set()
        self.failures = 0
        self.max_retries = max_retries
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.max_failures = max_failures
        self.closing = False
        self._closing: asyncio.Future[None] | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        settings = crawler.settings
        exits = exits_from_setting(settings.get("COLES_PROXIES"))
        if exits[0].url is not None:
            logger.info(
                "Leaving through %d exit(s): %s", len(exits), ", ".join(e.label for e in exits)
            )
        return cls(
            crawler,
            exits,
            settings.getint("COLES_BLOCK_MAX_RETRIES"),
            settings.getfloat("COLES_BLOCK_BACKOFF"),
            settings.getfloat("RETRY_BACKOFF_MAX"),
            settings.getint("COLES_EXIT_MAX_FAILURES"),
        )

    @property
    def exit(self) -> Exit:
        return self.exits[self.current]

    def process_request(self, request: scrapy.Request) -> None:
        exit_ = self.exit
        meta = request.meta
        meta["coles_exit"] = exit_.index
        meta["cookiejar"] = exit_.index
        if meta.get("playwright"):
            meta["playwright_context"] = f"exit-{exit_.index}"
            proxy = exit_.playwright_proxy()
            if proxy is not None:
                meta["playwright_context_kwargs"] = {"proxy": proxy}
        elif exit_.url is not None:
            meta["proxy"] = exit_.url

    def _rotate(self, away_from: int, why: str) -> None:
        if away_from != self.current or len(self.exits) < 2:
            return
        candidates = [e.index for e in self.exits if e.index not in self.blocked]
        following = [i for i in candidates if i > self.current] or candidates
        if not following:
            return
        self.current = following[0]
        self.failures = 0
        self.crawler.stats.inc_value("proxy/rotated")
        logger.warning("%s: moving to %s", why, self.exit.label)

    async def process_response(self, request: scrapy.Request, response: Response) -> Any:
        kind = protection_kind(response.body)
        if kind != PROTECTION_BLOCK and not (response.status == 403 and kind is None):
            if kind != PROTECTION_CHALLENGE:
                self.failures = 0
            return response
        return await self._blocked(request, response)

    async def _blocked(self, request: scrapy.Request, response: Response) -> Any:
        stats = self.crawler.stats
        stats.inc_value("botcheck/block")
        used = int(request.meta.get("coles_exit", self.current))
        tries = request.meta.get("coles_block_tries", 0)
        label = self.exits[used].label
        if used not in self.blocked:
            logger.warning(
                "The site's protection blocks %s (%s, HTTP %d): a verdict on the address, "
                "which no browser solves",
                label,
                "Incapsula block page" if response.status != 403 else "403",
                response.status,
            )
        self.blocked.add(used)
        if len(self.blocked) < len(self.exits):
            self._rotate(used, f"{label} is blocked")
            return self._again(request, tries)
        if tries < self.max_retries:
            delay = min(self.backoff * 2 ** min(tries, 16), max(self.backoff, self.backoff_max))
            stats.inc_value("block/waited_ms", round(delay * 1000))
            await asyncio.sleep(delay)
            self.blocked.clear()  # the verdict may have been lifted: try the exits again
            return self._again(request, tries)
        stats.inc_value("botcheck/block_gave_up")
        # A request awaited while the crawl starts (robots.txt, home page, category tree)
        # fails its caller, which closes the crawl with the same reason (robots.txt: the
        # home page, blocked too, does); two closes would race.
        starting = request.meta.get("coles_source") in ("home", "listing_setup") or bool(
            request.meta.get("dont_obey_robotstxt")
        )
        if not self.closing and not starting and self.crawler.engine is not None:
            self.closing = True
            where = "the direct address" if len(self.exits) == 1 else "every exit"
            remedy = (
                "set COLES_PROXIES to an exit the site accepts"
                if len(self.exits) == 1
                else "add an exit the site accepts to COLES_PROXIES"
            )
            logger.error(
                "The site's protection still blocks %s after %d retries: closing the crawl; "
                "%s (README, section Running against the real site)",
                where,
                tries,
                remedy,
            )
            self._closing = asyncio.ensure_future(
                _close_crawl(
                    self.crawler, f"blocked: the site's protection blocks {where}; {remedy}"
                )
            )
        raise BlockedByProtection(f"blocked by the site's protection on {label}")

    def _again(self, request: scrapy.Request, tries: int) -> scrapy.Request:
        meta = {
            k: v
            for k, v in request.meta.items()
            if k not in ("proxy", "coles_exit", "cookiejar", "_auth_proxy", "download_slot")
            and not k.startswith("playwright_context")
        }
        meta["coles_block_tries"] = tries + 1
        retry = request.replace(dont_filter=True, meta=meta)
        retry.headers.pop(b"Proxy-Authorization", None)
        return retry

    def process_exception(self, request: scrapy.Request, exception: Exception) -> None:
        if len(self.exits) < 2 or self.max_failures <= 0:
            return
        used = int(request.meta.get("coles_exit", self.current))
        self.crawler.stats.inc_value("proxy/failures")
        if used != self.current:
            return
        self.failures += 1
        if self.failures >= self.max_failures:
            self._rotate(used, f"{self.exits[used].label} failed {self.failures} times in a row")


class BotCheckMiddleware:
    """Solves the site's JavaScript challenge once per exit, in a real browser, then goes on
    with plain HTTP carrying all of the browser's cookies (whatever their names) and its
    user agent.

    A response that is the challenge page (whatever its status) makes one browser page
    (scrapy-playwright, leaving through the same exit) open the site and wait until the
    page is no longer the challenge: the challenge's script has run and reloaded it into
    content. That, not the presence of one cookie name, is what "solved" means: Imperva's
    cookies have changed names before (``reese84``, ``visid_incap_*``, ``incap_ses_*``,
    ``nlbi_*``). Requests waiting meanwhile share that one solution. At most
    ``COLES_BOTCHECK_MAX_BROWSER_PAGES`` browser pages per crawl. The block page is not a
    challenge: :class:`ExitPoolMiddleware` handles it and no browser opens. Stats:
    ``botcheck/*``.
    """

    def __init__(self, crawler: Crawler, max_pages: int, timeout: float) -> None:
        self.crawler = crawler
        self.max_pages = max_pages
        self.timeout = timeout
        self.generation = 0  # increases with every solution
        self.cookies: dict[int, list[dict[str, Any]]] = {}  # per exit
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
        if request.meta.get("playwright") or protection_kind(response.body) != (
            PROTECTION_CHALLENGE
        ):
            return response
        stats = self.crawler.stats
        stats.inc_value("botcheck/detected")
        stats.inc_value("botcheck/challenge")
        tries = request.meta.get("botcheck_tries", 0)
        if tries >= 2:
            stats.inc_value("botcheck/gave_up")
            logger.warning("Still the challenge after solving it: giving up on %s", request)
            return response
        if request.meta.get("botcheck_generation", 0) >= self.generation and not await self._solve(
            request
        ):
            return response
        exit_index = int(request.meta.get("coles_exit", 0))
        retry = request.replace(
            dont_filter=True,
            cookies=self.cookies.get(exit_index, []),
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
                "The challenge was met again but the browser budget (%d pages) is spent",
                self.max_pages,
            )
            return False
        self._solving = asyncio.get_running_loop().create_future()
        try:
            solved = await self._solve_in_browser(request)
        except Exception as exc:
            logger.error(
                "Solving the challenge in the browser failed: %s: %s", type(exc).__name__, exc
            )
            solved = False
        self._solving.set_result(solved)
        self._solving = None
        return solved

    async def _solve_in_browser(self, request: scrapy.Request) -> bool:
        stats = self.crawler.stats
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
                meta={"playwright": True, "playwright_include_page": True},
            )
        )
        page = response.meta["playwright_page"]
        exit_index = int(response.meta.get("coles_exit", 0))
        try:
            deadline = started + self.timeout
            kind: str | None = PROTECTION_CHALLENGE
            while time.monotonic() < deadline:
                try:
                    kind = protection_kind((await page.content()).encode())
                except Exception:  # the script is reloading the page: look again
                    kind = PROTECTION_CHALLENGE
                if kind != PROTECTION_CHALLENGE:
                    break
                await asyncio.sleep(0.2)
            if kind == PROTECTION_BLOCK:
                stats.inc_value("botcheck/block_in_browser")
                logger.error("The browser got the block page, not the challenge: not solvable")
                return False
            if kind == PROTECTION_CHALLENGE:
                logger.error("The browser's page was still the challenge after %.0fs", self.timeout)
                stats.inc_value("botcheck/unsolved")
                return False
            cookies = await page.context.cookies()
            self.user_agent = await page.evaluate("() => navigator.userAgent")
        finally:
            await page.close()
        self.cookies[exit_index] = [
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
            "Challenge solved in the browser in %.1fs: %d cookies (%s), continuing over plain HTTP",
            time.monotonic() - started,
            len(cookies),
            ", ".join(sorted({c["name"] for c in cookies})),
        )
        return True


async def _close_crawl(crawler: Crawler, reason: str) -> None:
    """Close the crawl with ``reason``, unless it is already closing (or not open yet: the
    start, failing on the same cause, closes it with its own reason)."""
    if crawler.engine is None:
        return
    with contextlib.suppress(RuntimeError):  # "Spider not opened": closed meanwhile
        await crawler.engine.close_spider_async(reason=reason)


def _home(url: str, crawler: Crawler) -> str:
    session = crawler.get_extension(SiteSession)
    base = session.base_url if session is not None else ""
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
