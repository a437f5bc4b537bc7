"""The crawl's final stats as a JSON file, for schedulers and scripts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from scrapy import signals
from scrapy.exceptions import NotConfigured

from colesbarcodes.files import atomic_file

if TYPE_CHECKING:
    from typing import Self

    from scrapy.crawler import Crawler

__all__ = ["StatsFile"]


class StatsFile:
    """Writes the crawl's final stats and close reason as JSON to ``COLES_STATS_FILE``,
    for schedulers and scripts that want figures, not log lines."""

    def __init__(self, crawler: Crawler, path: Path) -> None:
        self.crawler = crawler
        self.path = path

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        path = crawler.settings.get("COLES_STATS_FILE")
        if not path:
            raise NotConfigured
        extension = cls(crawler, Path(path))
        crawler.signals.connect(extension.spider_closed, signal=signals.spider_closed)
        return extension

    def spider_closed(self, reason: str) -> None:
        if self.crawler.stats is None:
            raise RuntimeError("the crawler has no stats collector")
        stats: dict[str, Any] = dict(self.crawler.stats.get_stats())
        stats.setdefault("finish_reason", reason)  # the monitors may have said more
        with atomic_file(self.path) as out:
            out.write(
                orjson.dumps(stats, default=str, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
            )
