"""Closing a crawl from a component, once, whatever else is closing it."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

__all__ = ["close_crawl"]


async def close_crawl(crawler: Crawler, reason: str) -> None:
    """Close the crawl with ``reason``, unless it is already closing (or not open yet: the
    start, failing on the same cause, closes it with its own reason)."""
    if crawler.engine is None:
        return
    with contextlib.suppress(RuntimeError):  # "Spider not opened": closed meanwhile
        await crawler.engine.close_spider_async(reason=reason)
