"""``scrapy crawl`` with an exit status that tells a bad run.

Scrapy's own command exits 1 only when the crawl could not start. This one (the project's
``COMMANDS_MODULE`` replaces the built-in) also exits :data:`MONITOR_FAILED_EXIT` (3) when
a crawl that ran to its end failed its monitors (finish reason ``monitor_failed: ...``, see
:mod:`colesbarcodes.monitors`), so a scheduler or a script sees a bad night without reading
logs. A crawl the project closed early on purpose (``database_unavailable``,
``site_unusable``) keeps Scrapy's exit status: it closed cleanly, said why in its finish
reason, and its verdict is still in the stats. Everything else is Scrapy's ``crawl``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scrapy.commands.crawl import Command as ScrapyCrawlCommand
from scrapy.exceptions import UsageError

from colesbarcodes.monitors import MONITOR_FAILED

if TYPE_CHECKING:
    import argparse

__all__ = ["MONITOR_FAILED_EXIT", "Command"]

MONITOR_FAILED_EXIT = 3  # 1: Scrapy could not start the crawl, 2: bad usage


class Command(ScrapyCrawlCommand):
    def short_desc(self) -> str:
        return "Run a spider of the current project, by name (exit 3 if its monitors failed)"

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        if len(args) < 1:
            raise UsageError
        if len(args) > 1:
            raise UsageError("running 'scrapy crawl' with more than one spider is not supported")
        if self.crawler_process is None:
            raise RuntimeError("scrapy set no crawler process for this command")
        crawler = self._create_crawler(args[0])
        self.crawler_process.crawl(crawler, **opts.spargs)
        self.crawler_process.start()
        if self.crawler_process.bootstrap_failed:
            self.exitcode = 1
        elif crawler.stats is not None and str(
            crawler.stats.get_value("finish_reason", "")
        ).startswith(MONITOR_FAILED):
            self.exitcode = MONITOR_FAILED_EXIT
