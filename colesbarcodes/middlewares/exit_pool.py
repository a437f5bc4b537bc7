"""Exits (forward proxies): a blocked exit is rested and the request goes out through
the next one."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from colesbarcodes.config import setting_float, setting_int
from colesbarcodes.crawl.control import close_crawl
from colesbarcodes.crawl.exits import (
    BlockedByProtection,
    Exit,
    exits_from_setting,
    protection_of,
)
from colesbarcodes.site.coles import PROTECTION_BLOCK, PROTECTION_CHALLENGE
from colesbarcodes.site.unusable import Unusable, finish_reason

if TYPE_CHECKING:
    from typing import Self

    import scrapy
    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from scrapy.settings import BaseSettings

__all__ = ["ExitPoolConfig", "ExitPoolMiddleware"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExitPoolConfig:
    """The exits' settings: ``COLES_PROXIES`` (the exits, in order; none: one direct exit),
    ``COLES_BLOCK_MAX_RETRIES`` and ``COLES_BLOCK_BACKOFF`` (waits on a block page once every
    exit is blocked, the first in seconds, doubling up to ``RETRY_BACKOFF_MAX``) and
    ``COLES_EXIT_MAX_FAILURES`` (connection failures in a row before moving on)."""

    exits: tuple[Exit, ...] = (Exit(0),)
    max_retries: int = 3
    backoff: float = 30.0
    backoff_max: float = 60.0
    max_failures: int = 5

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> Self:
        return cls(
            exits=tuple(exits_from_setting(settings.get("COLES_PROXIES"))),
            max_retries=setting_int(settings, "COLES_BLOCK_MAX_RETRIES"),
            backoff=setting_float(settings, "COLES_BLOCK_BACKOFF"),
            backoff_max=setting_float(settings, "RETRY_BACKOFF_MAX"),
            max_failures=setting_int(settings, "COLES_EXIT_MAX_FAILURES"),
        )


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
    ``exit/blocked``, ``exit/rotated``, ``exit/failures``, ``exit/block_waited_ms``.
    """

    def __init__(self, crawler: Crawler, config: ExitPoolConfig) -> None:
        self.crawler = crawler
        self.site = protection_of(crawler.settings)  # whose block page (CRAWL_RETAILER)
        self.config = config
        self.exits = config.exits
        self.current = 0
        self.blocked: set[int] = set()
        self.failures = 0
        self.closing = False
        self._closing: asyncio.Future[None] | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        config = ExitPoolConfig.from_settings(crawler.settings)
        exits = config.exits
        if exits[0].url is not None:
            logger.info(
                "Leaving through %d exit(s): %s", len(exits), ", ".join(e.label for e in exits)
            )
        return cls(crawler, config)

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
        self.crawler.stats.inc_value("exit/rotated")
        logger.warning("%s: moving to %s", why, self.exit.label)

    async def process_response(self, request: scrapy.Request, response: Response) -> Any:
        kind = self.site.protection_kind(response.body)
        if kind != PROTECTION_BLOCK and not (response.status == 403 and kind is None):
            if kind != PROTECTION_CHALLENGE:
                self.failures = 0
            return response
        return await self._blocked(request, response)

    async def _blocked(self, request: scrapy.Request, response: Response) -> Any:
        stats = self.crawler.stats
        stats.inc_value("exit/blocked")
        used = int(request.meta.get("coles_exit", self.current))
        tries = request.meta.get("coles_block_tries", 0)
        label = self.exits[used].label
        if used not in self.blocked:
            logger.warning(
                "The site's protection blocks %s (%s, HTTP %d): a verdict on the address, "
                "which no browser solves",
                label,
                "block page" if response.status != 403 else "403",
                response.status,
            )
        self.blocked.add(used)
        if len(self.blocked) < len(self.exits):
            self._rotate(used, f"{label} is blocked")
            return self._again(request, tries)
        if tries < self.config.max_retries:
            delay = min(
                self.config.backoff * 2 ** min(tries, 16),
                max(self.config.backoff, self.config.backoff_max),
            )
            stats.inc_value("exit/block_waited_ms", round(delay * 1000))
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
                close_crawl(
                    self.crawler,
                    finish_reason(
                        Unusable.BLOCKED, f"the site's protection blocks {where}; {remedy}"
                    ),
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
        if len(self.exits) < 2 or self.config.max_failures <= 0:
            return
        used = int(request.meta.get("coles_exit", self.current))
        self.crawler.stats.inc_value("exit/failures")
        if used != self.current:
            return
        self.failures += 1
        if self.failures >= self.config.max_failures:
            self._rotate(used, f"{self.exits[used].label} failed {self.failures} times in a row")
