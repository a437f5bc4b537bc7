"""``scrapy crawl`` with an exit status that tells a bad run.

Scrapy's own command exits 1 only when the crawl could not start, and 0 for a crawl that
closed early with nothing done. A scheduler (cron, systemd, scrapyd scripts) must see a bad
night without reading logs, so this command (the project's ``COMMANDS_MODULE`` replaces the
built-in) maps the finish reason to an exit status:

====  ==========================================================================
   0  the crawl ran to its end and its monitors passed
   1  Scrapy could not start the crawl (bad spider name, settings, arguments)
   2  bad usage of the command
   3  the monitors failed (finish reason ``monitor_failed: ...``, or any crawl whose
      ``monitor/result`` is ``failed`` and which has no more specific status below)
   4  the site is unreachable, or has changed so the crawl cannot use it
      (``site_unreachable``, ``site_changed``, ``site_unusable``)
   5  the site's protection blocks every exit tried (``blocked``): set ``COLES_PROXIES``
   6  the site refuses the subscription key its home page publishes (``key_refused``)
   7  the database is unavailable (``database_unavailable``)
   8  the shared frontier (Redis) is unavailable (``frontier_unavailable``)
====  ==========================================================================

The finish reason (in the log, the stats file and the run ledger) says which and why.
Everything else is Scrapy's ``crawl``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scrapy.commands.crawl import Command as ScrapyCrawlCommand
from scrapy.exceptions import UsageError

from colesbarcodes.extensions.crawl_monitor import MONITOR_FAILED

if TYPE_CHECKING:
    import argparse
    from collections.abc import Mapping

__all__ = ["EXIT_STATUSES", "MONITOR_FAILED_EXIT", "Command", "exit_status"]

MONITOR_FAILED_EXIT = 3
EXIT_STATUSES: dict[str, int] = {
    MONITOR_FAILED: MONITOR_FAILED_EXIT,
    "site_unreachable": 4,
    "site_changed": 4,
    "site_unusable": 4,
    "blocked": 5,
    "key_refused": 6,
    "database_unavailable": 7,
    "frontier_unavailable": 8,
}


def exit_status(stats: Mapping[str, object]) -> int:
    """The exit status a crawl with these final stats ends with (see the table above)."""
    reason = str(stats.get("finish_reason") or "")
    kind = reason.split(":", 1)[0].strip()
    if kind in EXIT_STATUSES:
        return EXIT_STATUSES[kind]
    if stats.get("monitor/result") == "failed":
        return MONITOR_FAILED_EXIT
    return 0


class Command(ScrapyCrawlCommand):
    def short_desc(self) -> str:
        return "Run a spider of the current project, by name (non-zero exit on a bad run)"

    def long_desc(self) -> str:
        return __doc__ or self.short_desc()

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
        elif crawler.stats is not None:
            self.exitcode = exit_status(crawler.stats.get_stats())
