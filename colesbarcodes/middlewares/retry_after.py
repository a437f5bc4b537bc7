"""Polite retries: a ``Retry-After`` header is honoured."""

from __future__ import annotations

import asyncio
import email.utils
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from scrapy.downloadermiddlewares.retry import RetryMiddleware

from colesbarcodes.config import setting_float

if TYPE_CHECKING:
    from typing import Self

    import scrapy
    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from scrapy.settings import BaseSettings

__all__ = ["RetryAfterConfig", "RetryAfterMiddleware"]


@dataclass(frozen=True)
class RetryAfterConfig:
    """The retries' waits: ``RETRY_BACKOFF_BASE`` (seconds before the first retry, doubling
    each time), ``RETRY_BACKOFF_MAX`` (the longest such wait) and ``RETRY_AFTER_MAX`` (the
    longest ``Retry-After`` honoured). Scrapy's own ``RETRY_*`` settings are read by
    :class:`~scrapy.downloadermiddlewares.retry.RetryMiddleware`."""

    backoff_base: float = 1.0
    backoff_max: float = 60.0
    retry_after_max: float = 300.0

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> Self:
        return cls(
            backoff_base=setting_float(settings, "RETRY_BACKOFF_BASE"),
            backoff_max=setting_float(settings, "RETRY_BACKOFF_MAX"),
            retry_after_max=setting_float(settings, "RETRY_AFTER_MAX"),
        )


class RetryAfterMiddleware(RetryMiddleware):
    """Scrapy's retries, with backoff: waits ``Retry-After`` (429/503) when the site says
    how long, else exponentially longer on each retry, before retrying.

    Settings: ``RETRY_BACKOFF_BASE`` (seconds, first wait), ``RETRY_BACKOFF_MAX`` and
    ``RETRY_AFTER_MAX`` (caps). Stats: ``retry/waited_ms``.
    """

    def __init__(self, crawler: Crawler, config: RetryAfterConfig) -> None:
        super().__init__(crawler.settings)
        self.crawler = crawler
        self.config = config

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler, RetryAfterConfig.from_settings(crawler.settings))

    def _delay(self, request: scrapy.Request, response: Response | None) -> float:
        if response is not None:
            header = response.headers.get(b"Retry-After")
            if header:
                seconds = _retry_after_seconds(header.decode("latin-1"))
                if seconds is not None:
                    return min(max(seconds, 0.0), self.config.retry_after_max)
        retries = request.meta.get("retry_times", 0)
        return min(self.config.backoff_base * 2**retries, self.config.backoff_max)

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
