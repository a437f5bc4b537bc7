"""``scrapy crawl`` with an exit status that tells a bad run.

Scrapy's own command exits 1 only when the crawl could not start, and 0 for a crawl that
closed early with nothing done. A scheduler (cron, systemd, scrapyd scripts) must see a bad
night without reading logs, so this command (the project's ``COMMANDS_MODULE`` replaces the
built-in) maps the finish reason to an exit status:

====  ==========================================================================
   0  the crawl ran to its end and its monitors passed
   1  Scrapy could not start the crawl (an unknown spider name, or a failure of its own)
   2  bad usage or bad configuration: a setting, environment variable, spider argument
      or option with a value the crawl cannot use (``ConfigurationError``); nothing was
      done. Also a crawl whose browser did not start when the site's challenge needed it
      (``browser_unavailable``: this machine's Chromium, ``COLES_CHROMIUM_PATH``, not the
      site); the SKUs it could not look up stay for the next run
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
Whatever the status, the last thing a crawl that did not end well logs is one ERROR line
that says what went wrong and what to do: for bad configuration, the error's sentence
(``Bad configuration: the setting COLES_GRAPHQL_BATCH must be ...``) instead of Scrapy's
traceback; else the finish reason and a remedy. Under scrapyd the same line ends the job's
log. Everything else is Scrapy's ``crawl``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from scrapy.commands.crawl import Command as ScrapyCrawlCommand
from scrapy.exceptions import UsageError
from twisted.internet.defer import Deferred

from colesbarcodes.config import ConfigurationError
from colesbarcodes.crawl.browser import LATE_REMEDY
from colesbarcodes.extensions.crawl_monitor import MONITOR_FAILED
from colesbarcodes.site.unusable import Unusable

if TYPE_CHECKING:
    import argparse
    from collections.abc import Mapping

    from scrapy.crawler import Crawler, CrawlerRunnerBase
    from twisted.python.failure import Failure

__all__ = [
    "BAD_CONFIGURATION_EXIT",
    "EXIT_STATUSES",
    "MONITOR_FAILED_EXIT",
    "SITE_EXIT_STATUSES",
    "Command",
    "exit_status",
    "run_crawler",
]

logger = logging.getLogger(__name__)

BAD_CONFIGURATION_EXIT = 2
MONITOR_FAILED_EXIT = 3
# Why the site could not be used (each reason's value begins the finish reason).
SITE_EXIT_STATUSES: dict[Unusable, int] = {
    Unusable.BROWSER_UNAVAILABLE: BAD_CONFIGURATION_EXIT,
    Unusable.UNREACHABLE: 4,
    Unusable.CHANGED: 4,
    Unusable.UNUSABLE: 4,
    Unusable.BLOCKED: 5,
    Unusable.KEY_REFUSED: 6,
}
# By the finish reason's first word.
EXIT_STATUSES: dict[str, int] = {
    **{reason.value: status for reason, status in SITE_EXIT_STATUSES.items()},
    MONITOR_FAILED: MONITOR_FAILED_EXIT,
    "database_unavailable": 7,
    "frontier_unavailable": 8,
}


# What to do, by exit status, in the last ERROR line of a crawl that did not end well.
REMEDIES: dict[int, str] = {
    2: f"{LATE_REMEDY}; the SKUs not looked up stay for the next run",
    3: "read the monitors' verdict above",
    4: "check COLES_BASE_URL and COLES_PROXIES; scrapy site-check says which point changed",
    5: "set COLES_PROXIES to an exit the site accepts",
    6: "run scrapy site-check: the site's key or its place may have changed",
    7: "check DATABASE_URL and that the database is up; the SKUs stay in the inbox",
    8: "check COLES_FRONTIER_URL and that Redis is up; the frontier keeps its SKUs",
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


def run_crawler(process: CrawlerRunnerBase, crawler: Crawler, arguments: Mapping[str, Any]) -> int:
    """Run ``crawler`` in ``process`` (started here) and return its exit status.

    A :class:`ConfigurationError` raised while the spider and its components are built is
    logged as one ERROR line (status 2) instead of Scrapy's traceback; any other failure
    to start keeps Scrapy's report (status 1). A crawl that ran ends with one ERROR line
    naming its finish reason and a remedy when its status is not 0.
    """
    refused: list[ConfigurationError] = []

    def configuration(error: BaseException) -> bool:
        if isinstance(error, ConfigurationError):
            refused.append(error)
            logger.error("Bad configuration: %s", " ".join(str(error).split()))
            return True
        return False

    def task_done(task: asyncio.Task[None]) -> None:
        error = None if task.cancelled() else task.exception()  # retrieved: not re-logged
        if error is not None and not configuration(error):
            logger.error("The crawl could not start", exc_info=error)

    def deferred_failed(failure: Failure) -> Failure | None:
        error = failure.value
        return None if error is not None and configuration(error) else failure

    started = process.crawl(crawler, **arguments)
    if isinstance(started, asyncio.Task):
        started.add_done_callback(task_done)
    elif isinstance(started, Deferred):
        started.addErrback(deferred_failed)
    process.start()  # type: ignore[attr-defined]
    if refused:
        return BAD_CONFIGURATION_EXIT
    if process.bootstrap_failed or crawler.stats is None:
        return 1
    stats = crawler.stats.get_stats()
    status = exit_status(stats)
    if status:
        reason = " ".join(str(stats.get("finish_reason") or "").split())
        logger.error(
            "The crawl ended with status %d (%s): %s", status, reason, REMEDIES.get(status, "")
        )
    return status


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
        try:
            crawler = self._create_crawler(args[0])
        except ConfigurationError as exc:
            logger.error("Bad configuration: %s", " ".join(str(exc).split()))
            self.exitcode = BAD_CONFIGURATION_EXIT
            return
        self.exitcode = run_crawler(self.crawler_process, crawler, opts.spargs)
