"""Monitors: at the end of a crawl, its stats decide whether the run was good.

Four checks, each against a threshold from the settings:

- failed share: ``coles/outcome/failed`` over the SKUs asked of the site (found,
  no_barcode, not_found, invalid_barcode, failed; prefilled and skipped SKUs cost no
  request), at most ``COLES_MONITOR_MAX_FAILED_SHARE``;
- challenge share: ``botcheck/detected`` over ``downloader/response_count``, at most
  ``COLES_MONITOR_MAX_CHALLENGE_SHARE``;
- items dropped: ``item_dropped_count``, at most ``COLES_MONITOR_MAX_ITEMS_DROPPED``;
- errors logged: ``log_count/ERROR``, at most ``COLES_MONITOR_MAX_ERRORS``.

The challenge share counts against ``downloader/response_count`` (every response, the bot
check's included) rather than ``response_received_count``, which misses the bot-check
pages the middleware replaces by retries.

The :class:`CrawlMonitor` extension evaluates them on ``spider_closed`` and records the
verdict in the stats (``monitor/result`` = ``passed`` or ``failed``, ``monitor/failures``,
``monitor/failed_share``, ``monitor/challenge_share``); a failed verdict turns the finish
reason ``finished`` into ``monitor_failed: failed share 0.40 > 0.25``. The stats file, the
run ledger (:class:`colesbarcodes.extensions.CrawlRunLedger`) and the exit status of
``scrapy crawl`` (3, see :mod:`colesbarcodes.commands.crawl`) carry the verdict on.

Scrapy's stats and signals are used directly rather than spidermon: spidermon 1.27 calls
the deprecated ``Spider.log()`` on every run, and with warnings as errors its close
monitors do not run at all.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scrapy import signals
from scrapy.exceptions import NotConfigured

from colesbarcodes.db.runs import LOOKED_UP_OUTCOMES

if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Self

    from scrapy.crawler import Crawler
    from scrapy.settings import BaseSettings

__all__ = [
    "MONITOR_FAILED",
    "Check",
    "CrawlMonitor",
    "Thresholds",
    "Verdict",
    "evaluate",
]

logger = logging.getLogger(__name__)

MONITOR_FAILED = "monitor_failed"


@dataclass(frozen=True)
class Thresholds:
    """The most a good run may show; a run above any of them fails its monitor."""

    max_failed_share: float = 0.25
    max_challenge_share: float = 0.3
    max_items_dropped: int = 0
    max_errors: int = 0

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> Self:
        return cls(
            max_failed_share=settings.getfloat("COLES_MONITOR_MAX_FAILED_SHARE"),
            max_challenge_share=settings.getfloat("COLES_MONITOR_MAX_CHALLENGE_SHARE"),
            max_items_dropped=settings.getint("COLES_MONITOR_MAX_ITEMS_DROPPED"),
            max_errors=settings.getint("COLES_MONITOR_MAX_ERRORS"),
        )


@dataclass(frozen=True)
class Check:
    """One figure of the run against its limit."""

    name: str
    value: float
    limit: float
    share: bool = False  # shown with two decimals, else as a count

    @property
    def passed(self) -> bool:
        return self.value <= self.limit

    def __str__(self) -> str:
        if self.share:
            return f"{self.name} {self.value:.2f} {'<=' if self.passed else '>'} {self.limit:.2f}"
        return f"{self.name} {self.value:g} {'<=' if self.passed else '>'} {self.limit:g}"


@dataclass(frozen=True)
class Verdict:
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def result(self) -> str:
        return "passed" if self.passed else "failed"

    @property
    def failures(self) -> str:
        """The failed checks, e.g. ``failed share 0.40 > 0.25; errors logged 2 > 0``."""
        return "; ".join(str(check) for check in self.checks if not check.passed)


def _count(stats: Mapping[str, Any], key: str) -> int:
    value = stats.get(key) or 0
    return int(value) if isinstance(value, int | float) else 0


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def evaluate(stats: Mapping[str, Any], thresholds: Thresholds) -> Verdict:
    """The verdict on a crawl's stats (a pure function: the extension only wires it up)."""
    looked_up = sum(_count(stats, f"coles/outcome/{o}") for o in LOOKED_UP_OUTCOMES)
    responses = _count(stats, "downloader/response_count")
    return Verdict(
        (
            Check(
                "failed share",
                _share(_count(stats, "coles/outcome/failed"), looked_up),
                thresholds.max_failed_share,
                share=True,
            ),
            Check(
                "challenge share",
                _share(_count(stats, "botcheck/detected"), responses),
                thresholds.max_challenge_share,
                share=True,
            ),
            Check(
                "items dropped", _count(stats, "item_dropped_count"), thresholds.max_items_dropped
            ),
            Check("errors logged", _count(stats, "log_count/ERROR"), thresholds.max_errors),
        )
    )


class CrawlMonitor:
    """Judges the crawl when it closes and records the verdict in its stats.

    Enabled by ``COLES_MONITOR_ENABLED``. It must come after Scrapy's ``CoreStats`` (which
    sets ``finish_reason``) and before the stats file and the run ledger in ``EXTENSIONS``:
    ``spider_closed`` handlers run in that order.
    """

    def __init__(self, crawler: Crawler, thresholds: Thresholds) -> None:
        self.crawler = crawler
        self.thresholds = thresholds

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        if not crawler.settings.getbool("COLES_MONITOR_ENABLED"):
            raise NotConfigured
        monitor = cls(crawler, Thresholds.from_settings(crawler.settings))
        crawler.signals.connect(monitor.spider_closed, signal=signals.spider_closed)
        return monitor

    def spider_closed(self, reason: str) -> None:
        stats = self.crawler.stats
        if stats is None:
            raise RuntimeError("the crawler has no stats collector")
        verdict = evaluate(stats.get_stats(), self.thresholds)
        stats.set_value("monitor/result", verdict.result)
        for check in verdict.checks:
            if check.share:
                stats.set_value(f"monitor/{check.name.replace(' ', '_')}", round(check.value, 4))
        if verdict.passed:
            logger.info("Monitors passed: %s", "; ".join(map(str, verdict.checks)))
            return
        stats.set_value("monitor/failures", verdict.failures)
        if reason == "finished":  # any other reason already says what went wrong
            stats.set_value("finish_reason", f"{MONITOR_FAILED}: {verdict.failures}")
        logger.warning("Monitors failed: %s", verdict.failures)
