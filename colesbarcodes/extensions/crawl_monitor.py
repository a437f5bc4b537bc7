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

Two more, the drift monitor, tell a site that changed under a crawl that still "works"
(their failure ends with ``: the site may have changed, run scrapy site-check``):

- gtin share (barcode crawls only; the listing crawl looks nothing up): of the product
  records the site answered (outcomes found, no_barcode, invalid_barcode: not_found and
  failed SKUs have no record), the share that carried a GTIN (found, invalid_barcode). It
  must be at least ``COLES_MONITOR_GTIN_DROP`` (0.5) times the median share of the latest
  ``COLES_MONITOR_GTIN_HISTORY`` (5) runs of the same spider in the run ledger that had at
  least ``COLES_MONITOR_GTIN_MIN_RECORDS`` (20) records, and never less than the floor
  ``COLES_MONITOR_MIN_GTIN_SHARE`` (0.05), which alone applies while no such run is
  recorded. A run with fewer records than that minimum is not judged (too small to say);
- format error share: ``coles/site_format_errors`` (SKU answers the crawl could not read
  because their format was not the one it knows: an unreadable GraphQL answer, counted for
  every SKU it carried; a document GraphQL refused as invalid, likewise; one product's
  record of the wrong shape, or refused; not the server's own error on a field, which is a
  failure like a 503) over ``coles/answers_read``
  (the SKUs of every answer read, retries included), at most
  ``COLES_MONITOR_MAX_FORMAT_ERROR_SHARE``.

The history is read once, when the spider opens, in a thread beside the crawl (never in
its way); a database that cannot be read then, or a read not done by the end of the crawl,
means no history (a warning): the floor applies.

The :class:`CrawlMonitor` extension evaluates them on ``spider_closed`` and records the
verdict in the stats (``monitor/result`` = ``passed`` or ``failed``, ``monitor/failures``,
``monitor/drift_failures`` (the failed drift checks: the run ledger distrusts such a run),
``monitor/failed_share``, ``monitor/challenge_share``, ``monitor/format_error_share``, and
for a judged GTIN share ``monitor/gtin_share``, ``monitor/gtin_share_expected``,
``monitor/gtin_history_runs`` and, with history, ``monitor/gtin_share_median``); a failed
verdict turns the finish reason ``finished`` into ``monitor_failed: failed share 0.40 >
0.25``. The stats file, the run ledger (:class:`colesbarcodes.extensions.run_ledger.CrawlRunLedger`)
and the exit status of ``scrapy crawl`` (3, see :mod:`colesbarcodes.commands.crawl`) carry
the verdict on.

Scrapy's stats and signals are used directly rather than spidermon: spidermon 1.27 calls
the deprecated ``Spider.log()`` on every run, and with warnings as errors its close
monitors do not run at all.
"""

from __future__ import annotations

import logging
import statistics
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from scrapy import signals
from scrapy.exceptions import NotConfigured

from colesbarcodes.config import setting_bool, setting_float, setting_int, setting_str
from colesbarcodes.db.engine import (
    DATABASE_ERRORS,
    database_url,
    error_detail,
    redact,
    session_factory,
)
from colesbarcodes.db.runs import (
    GTIN_OUTCOMES,
    LOOKED_UP_OUTCOMES,
    RECORD_OUTCOMES,
    recent_crawl_outcomes,
)
from colesbarcodes.extensions.run_ledger import ledger_engine

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Self

    from scrapy import Spider
    from scrapy.crawler import Crawler
    from scrapy.settings import BaseSettings

__all__ = [
    "MONITOR_FAILED",
    "SITE_CHANGE_HINT",
    "Check",
    "CrawlMonitor",
    "MonitorConfig",
    "Thresholds",
    "Verdict",
    "evaluate",
    "gtin_baseline",
    "gtin_counts",
]

logger = logging.getLogger(__name__)

MONITOR_FAILED = "monitor_failed"
SITE_CHANGE_HINT = "the site may have changed, run scrapy site-check"
_OUTCOME = "coles/outcome/"


@dataclass(frozen=True)
class Thresholds:
    """The most a good run may show; a run above any of them fails its monitor (the GTIN
    share: below). Settings ``COLES_MONITOR_MAX_FAILED_SHARE``,
    ``COLES_MONITOR_MAX_CHALLENGE_SHARE``, ``COLES_MONITOR_MAX_ITEMS_DROPPED``,
    ``COLES_MONITOR_MAX_ERRORS``, ``COLES_MONITOR_GTIN_DROP``, ``COLES_MONITOR_GTIN_HISTORY``,
    ``COLES_MONITOR_GTIN_MIN_RECORDS``, ``COLES_MONITOR_MIN_GTIN_SHARE`` and
    ``COLES_MONITOR_MAX_FORMAT_ERROR_SHARE``."""

    max_failed_share: float = 0.25
    max_challenge_share: float = 0.3
    max_items_dropped: int = 0
    max_errors: int = 0
    gtin_drop: float = 0.5  # at least this times the recent runs' median GTIN share
    gtin_history: int = 5  # recent runs the median is taken over
    gtin_min_records: int = 20  # records a run needs to be judged, or to count in history
    min_gtin_share: float = 0.05  # the floor, and the only limit while there is no history
    max_format_error_share: float = 0.05

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> Self:
        return cls(
            max_failed_share=setting_float(settings, "COLES_MONITOR_MAX_FAILED_SHARE"),
            max_challenge_share=setting_float(settings, "COLES_MONITOR_MAX_CHALLENGE_SHARE"),
            max_items_dropped=setting_int(settings, "COLES_MONITOR_MAX_ITEMS_DROPPED"),
            max_errors=setting_int(settings, "COLES_MONITOR_MAX_ERRORS"),
            gtin_drop=setting_float(settings, "COLES_MONITOR_GTIN_DROP"),
            gtin_history=setting_int(settings, "COLES_MONITOR_GTIN_HISTORY"),
            gtin_min_records=setting_int(settings, "COLES_MONITOR_GTIN_MIN_RECORDS"),
            min_gtin_share=setting_float(settings, "COLES_MONITOR_MIN_GTIN_SHARE"),
            max_format_error_share=setting_float(settings, "COLES_MONITOR_MAX_FORMAT_ERROR_SHARE"),
        )


@dataclass(frozen=True)
class MonitorConfig:
    """The monitor's settings: its :class:`Thresholds`, ``COLES_MONITOR_GTIN_SHARE`` (judge
    the GTIN share against the run ledger's recent runs), and where that history is read:
    ``DATABASE_URL``, with ``COLES_LEDGER_CONNECT_TIMEOUT`` (seconds) bounding the wait on
    PostgreSQL. ``COLES_MONITOR_ENABLED`` turns the extension on."""

    thresholds: Thresholds = field(default_factory=Thresholds)
    database_url: str = field(default_factory=database_url)
    connect_timeout: float = 10.0
    gtin_share: bool = False

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> Self:
        return cls(
            thresholds=Thresholds.from_settings(settings),
            database_url=setting_str(settings, "DATABASE_URL"),
            connect_timeout=setting_float(settings, "COLES_LEDGER_CONNECT_TIMEOUT"),
            gtin_share=setting_bool(settings, "COLES_MONITOR_GTIN_SHARE"),
        )


@dataclass(frozen=True)
class Check:
    """One figure of the run against its limit: at most the limit, or with ``minimum`` at
    least the limit. A check not ``judged`` (too little to go by) passes; ``note`` says why,
    or where the limit comes from. A failed ``site_change`` check makes the verdict suggest
    ``scrapy site-check``; ``extra`` are figures recorded with it (``monitor/<name>``)."""

    name: str
    value: float
    limit: float
    share: bool = False  # shown with two decimals, else as a count
    minimum: bool = False
    judged: bool = True
    note: str = ""
    site_change: bool = False
    extra: tuple[tuple[str, float], ...] = ()

    @property
    def passed(self) -> bool:
        if not self.judged:
            return True
        return self.value >= self.limit if self.minimum else self.value <= self.limit

    def __str__(self) -> str:
        if not self.judged:
            return f"{self.name} not judged ({self.note})"
        kept, broken = (">=", "<") if self.minimum else ("<=", ">")
        sign = kept if self.passed else broken
        spec = ".2f" if self.share else "g"
        text = f"{self.name} {self.value:{spec}} {sign} {self.limit:{spec}}"
        return f"{text} ({self.note})" if self.note else text


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
        """The failed checks, e.g. ``failed share 0.40 > 0.25; errors logged 2 > 0``; when a
        drift check failed, followed by ``: the site may have changed, run scrapy
        site-check`` (the drift checks come last)."""
        failed = [check for check in self.checks if not check.passed]
        text = "; ".join(map(str, failed))
        if any(check.site_change for check in failed):
            text += f": {SITE_CHANGE_HINT}"
        return text

    @property
    def drift_failures(self) -> str:
        """The failed drift checks alone (empty when they passed), e.g. ``gtin share 0.00 <
        0.45 (half the recent runs' median 0.90)``: a run they fail is distrusted (its
        answers without a barcode may only say that the site changed)."""
        return "; ".join(str(c) for c in self.checks if c.site_change and not c.passed)


def _count(stats: Mapping[str, Any], key: str) -> int:
    value = stats.get(key) or 0
    return int(value) if isinstance(value, int | float) else 0


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def gtin_counts(outcomes: Mapping[str, Any]) -> tuple[int, int]:
    """(records with a GTIN, records) of SKUs per outcome (a run ledger row's
    ``outcomes``): the records are the SKUs the site answered with a product record (found,
    no_barcode, invalid_barcode); a GTIN that fails validation is still a GTIN the site
    sent."""
    return (
        sum(_count(outcomes, o) for o in GTIN_OUTCOMES),
        sum(_count(outcomes, o) for o in RECORD_OUTCOMES),
    )


def gtin_baseline(history: Sequence[Mapping[str, Any]], thresholds: Thresholds) -> list[float]:
    """The GTIN shares a run is compared with: those of the latest
    ``thresholds.gtin_history`` runs of ``history`` (SKUs per outcome, newest first) that
    had at least ``thresholds.gtin_min_records`` records, newest first."""
    shares: list[float] = []
    if thresholds.gtin_history <= 0:
        return shares
    for outcomes in history:
        with_gtin, records = gtin_counts(outcomes)
        if records and records >= thresholds.gtin_min_records:
            shares.append(with_gtin / records)
            if len(shares) == thresholds.gtin_history:
                break
    return shares


def _times(factor: float) -> str:
    return "half" if factor == 0.5 else f"{factor:g} x"


def _gtin_check(
    stats: Mapping[str, Any], thresholds: Thresholds, history: Sequence[Mapping[str, Any]]
) -> Check:
    outcomes = {k[len(_OUTCOME) :]: v for k, v in stats.items() if k.startswith(_OUTCOME)}
    with_gtin, records = gtin_counts(outcomes)
    share = _share(with_gtin, records)
    least = max(thresholds.gtin_min_records, 1)
    if records < least:
        return Check(
            "gtin share",
            share,
            0.0,
            share=True,
            minimum=True,
            judged=False,
            note=f"{records} records < {least}",
        )
    floor = thresholds.min_gtin_share
    shares = gtin_baseline(history, thresholds)
    extra: tuple[tuple[str, float], ...] = (("gtin_history_runs", len(shares)),)
    if not shares:
        expected, note = floor, "the floor: no recent run to compare with"
    else:
        median = statistics.median(shares)
        extra += (("gtin_share_median", round(median, 4)),)
        expected = thresholds.gtin_drop * median
        note = f"{_times(thresholds.gtin_drop)} the recent runs' median {median:.2f}"
        if expected < floor:  # a site broken for several runs must not become the norm
            expected, note = floor, f"the floor; the recent runs' median is {median:.2f}"
    return Check(
        "gtin share",
        share,
        expected,
        share=True,
        minimum=True,
        note=note,
        site_change=True,
        extra=(("gtin_share_expected", round(expected, 4)), *extra),
    )


def evaluate(
    stats: Mapping[str, Any],
    thresholds: Thresholds,
    history: Sequence[Mapping[str, Any]] | None = None,
) -> Verdict:
    """The verdict on a crawl's stats (a pure function: the extension only wires it up).

    ``history``: SKUs per outcome of the spider's recent runs in the run ledger, newest
    first (``[]``: none recorded, or the ledger could not be read); ``None`` for a spider
    that looks no barcode up, whose GTIN share is not checked.
    """
    looked_up = sum(_count(stats, f"coles/outcome/{o}") for o in LOOKED_UP_OUTCOMES)
    responses = _count(stats, "downloader/response_count")
    format_errors = _count(stats, "coles/site_format_errors")
    answers = max(_count(stats, "coles/answers_read"), format_errors)
    checks = [
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
        Check("items dropped", _count(stats, "item_dropped_count"), thresholds.max_items_dropped),
        Check("errors logged", _count(stats, "log_count/ERROR"), thresholds.max_errors),
    ]
    # The drift checks come last: the verdict's hint to run site-check follows them.
    if history is not None:
        checks.append(_gtin_check(stats, thresholds, history))
    checks.append(
        Check(
            "format error share",
            _share(format_errors, answers),
            thresholds.max_format_error_share,
            share=True,
            site_change=True,
        )
    )
    return Verdict(tuple(checks))


class CrawlMonitor:
    """Judges the crawl when it closes and records the verdict in its stats.

    Enabled by ``COLES_MONITOR_ENABLED``. It must come after Scrapy's ``CoreStats`` (which
    sets ``finish_reason``) and before the stats file and the run ledger in ``EXTENSIONS``:
    ``spider_closed`` handlers run in that order.

    For a crawl with ``COLES_MONITOR_GTIN_SHARE`` on (the barcode spider sets it), the run
    ledger's recent runs are read when it opens (:meth:`read_history`, in a thread of its
    own, ``COLES_LEDGER_CONNECT_TIMEOUT`` bounding the wait on PostgreSQL), for the GTIN
    share.
    """

    def __init__(self, crawler: Crawler, config: MonitorConfig) -> None:
        self.crawler = crawler
        self.config = config
        self.thresholds = config.thresholds
        self.history: Future[list[dict[str, int]]] | None = None  # None: no GTIN check

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        settings = crawler.settings
        if not setting_bool(settings, "COLES_MONITOR_ENABLED"):
            raise NotConfigured
        monitor = cls(crawler, MonitorConfig.from_settings(settings))
        crawler.signals.connect(monitor.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(monitor.spider_closed, signal=signals.spider_closed)
        return monitor

    def spider_opened(self, spider: Spider) -> None:
        if not self.config.gtin_share:
            return
        future: Future[list[dict[str, int]]] = Future()
        name = spider.name

        def read() -> None:
            future.set_result(self.read_history(name))

        self.history = future
        threading.Thread(target=read, name="coles-run-history", daemon=True).start()

    def read_history(self, spider: str) -> list[dict[str, int]]:
        """SKUs per outcome of ``spider``'s recent runs in the run ledger, newest first;
        ``[]`` (and a warning, never a traceback) when the database cannot be read."""
        url = self.config.database_url
        if not url:
            return []
        scan = max(100, 10 * self.thresholds.gtin_history)  # small runs may come between
        try:
            engine = ledger_engine(url, self.config.connect_timeout)
            try:
                with session_factory(engine)() as session:
                    return recent_crawl_outcomes(session, spider, scan)
            finally:
                engine.dispose()
        except DATABASE_ERRORS as exc:
            detail = error_detail(exc)
            logger.warning(
                "No run history for the drift monitor: the database %s cannot be read (%s); "
                "the GTIN share is judged against the floor",
                redact(url),
                detail or type(exc).__name__,
            )
        except Exception:
            logger.warning("No run history for the drift monitor: reading it failed", exc_info=True)
        return []

    def _history(self) -> list[dict[str, int]] | None:
        if self.history is None:
            return None
        if not self.history.done():
            logger.warning(
                "No run history for the drift monitor: still reading it when the crawl ended; "
                "the GTIN share is judged against the floor"
            )
            return []
        return self.history.result()

    def spider_closed(self, reason: str) -> None:
        stats = self.crawler.stats
        if stats is None:
            raise RuntimeError("the crawler has no stats collector")
        verdict = evaluate(stats.get_stats(), self.thresholds, self._history())
        stats.set_value("monitor/result", verdict.result)
        for check in verdict.checks:
            if check.share and check.judged:
                stats.set_value(f"monitor/{check.name.replace(' ', '_')}", round(check.value, 4))
            for name, value in check.extra:
                stats.set_value(f"monitor/{name}", value)
        if verdict.passed:
            logger.info("Monitors passed: %s", "; ".join(map(str, verdict.checks)))
            return
        stats.set_value("monitor/failures", verdict.failures)
        if verdict.drift_failures:  # the run ledger distrusts the run for them
            stats.set_value("monitor/drift_failures", verdict.drift_failures)
        if reason == "finished":  # any other reason already says what went wrong
            stats.set_value("finish_reason", f"{MONITOR_FAILED}: {verdict.failures}")
        logger.warning("Monitors failed: %s", verdict.failures)
