"""The site's bot check: solved once in a real browser, its cookies carried on by plain
HTTP."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import scrapy
from scrapy.exceptions import NotConfigured

from colesbarcodes.config import setting_bool, setting_float, setting_int
from colesbarcodes.crawl.browser import (
    LATE_REMEDY,
    BrowserUnavailable,
    browser_unavailable,
    is_launch_failure,
)
from colesbarcodes.crawl.control import close_crawl
from colesbarcodes.crawl.exits import protection_of
from colesbarcodes.extensions.site_session import SiteSession
from colesbarcodes.site.coles import PROTECTION_BLOCK, PROTECTION_CHALLENGE

if TYPE_CHECKING:
    from typing import Self

    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from scrapy.settings import BaseSettings

__all__ = ["BotCheckConfig", "BotCheckMiddleware"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BotCheckConfig:
    """The bot check's settings: ``COLES_BOTCHECK_MAX_BROWSER_PAGES`` (browser pages per
    crawl at most) and ``COLES_BOTCHECK_TIMEOUT`` (seconds a page may stay the challenge).
    ``COLES_BOTCHECK_ENABLED`` turns the middleware on."""

    max_pages: int = 3
    timeout: float = 30.0

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> Self:
        return cls(
            max_pages=setting_int(settings, "COLES_BOTCHECK_MAX_BROWSER_PAGES"),
            timeout=setting_float(settings, "COLES_BOTCHECK_TIMEOUT"),
        )


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

    A browser that does not start is not a site that changed: the challenge page is not
    handed on as the site's answer. The request fails with :class:`BrowserUnavailable`
    (no outcome for its SKUs: they stay for the next run), and so does every challenged
    request after it (no second launch); the crawl closes with that error's message as
    its finish reason (``browser_unavailable: COLES_CHROMIUM_PATH ...``, exit status 2).
    A request the start awaits (the home page, the listing's set-up) fails its caller,
    which closes the crawl with the same reason.
    """

    def __init__(self, crawler: Crawler, config: BotCheckConfig) -> None:
        self.crawler = crawler
        self.site = protection_of(crawler.settings)  # whose challenge (CRAWL_RETAILER)
        self.config = config
        self.generation = 0  # increases with every solution
        self.cookies: dict[int, list[dict[str, Any]]] = {}  # per exit
        self.user_agent: str | None = None
        self.pages = 0
        self._solving: asyncio.Future[bool] | None = None
        self.unavailable: BrowserUnavailable | None = None  # once the browser failed to start
        self._closing: asyncio.Future[None] | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        settings = crawler.settings
        if not setting_bool(settings, "COLES_BOTCHECK_ENABLED"):
            raise NotConfigured
        return cls(crawler, BotCheckConfig.from_settings(settings))

    def process_request(self, request: scrapy.Request) -> None:
        if request.meta.get("playwright"):
            return
        request.meta.setdefault("botcheck_generation", self.generation)
        if self.user_agent:
            request.headers["User-Agent"] = self.user_agent

    async def process_response(self, request: scrapy.Request, response: Response) -> Any:
        if request.meta.get("playwright") or self.site.protection_kind(response.body) != (
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
        if self.unavailable is not None:
            raise self._refuse(request, self.unavailable)
        if request.meta.get("botcheck_generation", 0) >= self.generation and not await self._solve(
            request
        ):
            if self.unavailable is not None:
                raise self._refuse(request, self.unavailable)
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
        if self.pages >= self.config.max_pages:
            self.crawler.stats.inc_value("botcheck/over_budget")
            logger.error(
                "The challenge was met again but the browser budget (%d pages) is spent",
                self.config.max_pages,
            )
            return False
        self._solving = asyncio.get_running_loop().create_future()
        try:
            solved = await self._solve_in_browser(request)
        except Exception as exc:
            if is_launch_failure(exc):
                self.unavailable = browser_unavailable(self.crawler.settings, exc)
                logger.error("%s: closing the crawl; %s", self.unavailable, LATE_REMEDY)
            else:
                logger.error(
                    "Solving the challenge in the browser failed: %s: %s", type(exc).__name__, exc
                )
            solved = False
        self._solving.set_result(solved)
        self._solving = None
        return solved

    def _refuse(
        self, request: scrapy.Request, unavailable: BrowserUnavailable
    ) -> BrowserUnavailable:
        """The error for a challenged request with no browser to solve it; closes the crawl
        unless a caller at the start does (two closes would race for the reason)."""
        self.crawler.stats.inc_value("botcheck/browser_unavailable")
        starting = request.meta.get("coles_source") in ("home", "listing_setup") or bool(
            request.meta.get("dont_obey_robotstxt")  # robots.txt: the home page comes next
        )
        if self._closing is None and not starting and self.crawler.engine is not None:
            self._closing = asyncio.ensure_future(close_crawl(self.crawler, str(unavailable)))
        return BrowserUnavailable(unavailable.detail)

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
            deadline = started + self.config.timeout
            kind: str | None = PROTECTION_CHALLENGE
            while time.monotonic() < deadline:
                try:
                    kind = self.site.protection_kind((await page.content()).encode())
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
                logger.error(
                    "The browser's page was still the challenge after %.0fs", self.config.timeout
                )
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


def _home(url: str, crawler: Crawler) -> str:
    session = crawler.get_extension(SiteSession)
    base = session.base_url if session is not None else ""
    if base:
        return f"{base}/"
    parts = url.split("/", 3)
    return "/".join(parts[:3]) + "/"
