"""Scrapy's log formatter without per-item records unless the log level is DEBUG."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from scrapy.logformatter import LogFormatter

if TYPE_CHECKING:
    from typing import Self

    from scrapy import Spider
    from scrapy.crawler import Crawler

__all__ = ["QuietItemsLogFormatter"]


class QuietItemsLogFormatter(LogFormatter):
    """Scrapy's log formatter without the per-item "Scraped from" record unless the log
    level is DEBUG: at 30,000 items a store, building records nobody sees is a cost."""

    def __init__(self, debug: bool = True) -> None:
        self.debug = debug

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        level = crawler.settings.get("LOG_LEVEL")
        numeric = logging.getLevelName(level) if isinstance(level, str) else level
        return cls(debug=not isinstance(numeric, int) or numeric <= logging.DEBUG)

    def scraped(self, item: Any, response: Any, spider: Spider) -> Any:
        return super().scraped(item, response, spider) if self.debug else None
