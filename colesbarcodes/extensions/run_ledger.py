"""The run ledger: every crawl's host, job, counts and verdict in ``crawl_runs``."""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from scrapy import signals
from scrapy.exceptions import NotConfigured

from colesbarcodes.config import setting_bool, setting_float, setting_str
from colesbarcodes.db.engine import (
    DATABASE_ERRORS,
    database_url,
    error_detail,
    make_engine,
    migrate,
    redact,
    session_factory,
)
from colesbarcodes.db.lookups import NO_BARCODE_OUTCOMES
from colesbarcodes.db.runs import RunRecord, record_crawl_run

if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Self

    from scrapy.crawler import Crawler
    from scrapy.settings import BaseSettings
    from sqlalchemy.engine import Engine

__all__ = ["UNREADABLE_STAT", "CrawlRunLedger", "LedgerConfig", "distrust_reason", "ledger_engine"]

logger = logging.getLogger(__name__)


def ledger_engine(database_url: str, connect_timeout: float) -> Engine:
    """An engine for reading or writing the run ledger from a crawl: on PostgreSQL a server
    that does not answer fails within ``connect_timeout`` seconds instead of hanging."""
    kwargs: dict[str, Any] = {}
    if database_url.startswith("postgres"):
        kwargs["connect_args"] = {"connect_timeout": max(1, round(connect_timeout))}
    return make_engine(database_url, **kwargs)


# SKUs whose answer the crawl could not understand (counted by the spider).
UNREADABLE_STAT = "coles/answers_unreadable"


def distrust_reason(stats: Mapping[str, Any]) -> str | None:
    """Why a run's answers without a barcode are not to be believed, from its final stats;
    ``None`` when they are.

    Two things make a run distrusted: its drift monitor failed (``monitor/drift_failures``:
    the GTIN share collapsed, or too many answers had a format the crawl does not know: the
    site changed, and "no barcode" may only mean "the field moved"), or the site answered
    it unreadably (``coles/answers_unreadable`` > 0: SKUs whose answer was not understood).
    The other monitors (failed share, bot-check share, items dropped, errors logged) say
    the crawl got too few answers, not that the answers it read mean something else: the
    SKUs they concern are ``failed`` and asked again anyway.
    """
    reasons = []
    drift = stats.get("monitor/drift_failures")
    if drift:
        reasons.append(f"drift monitor failed: {drift}")
    unreadable = stats.get(UNREADABLE_STAT)
    if isinstance(unreadable, int | float) and unreadable > 0:
        count = int(unreadable)
        reasons.append(f"the site answered unreadably {count} time{'' if count == 1 else 's'}")
    return "; ".join(reasons) or None


def _json_ready(stats: dict[str, Any]) -> dict[str, Any]:
    """The stats as plain JSON values (datetimes as ISO strings, anything odd as text)."""
    ready: dict[str, Any] = orjson.loads(
        orjson.dumps(stats, default=str, option=orjson.OPT_NON_STR_KEYS)
    )
    return ready


def _utc(value: Any, fallback: datetime) -> datetime:
    if not isinstance(value, datetime):
        return fallback
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class LedgerConfig:
    """The run ledger's settings: ``DATABASE_URL`` (where ``crawl_runs`` is),
    ``COLES_LEDGER_CONNECT_TIMEOUT`` (seconds a PostgreSQL server may take to answer) and
    ``COLES_JOB`` (scrapyd's job id, recorded with the run; empty: none).
    ``COLES_RUN_LEDGER_ENABLED`` turns the extension on."""

    database_url: str = field(default_factory=database_url)
    connect_timeout: float = 10.0
    job: str | None = None

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> Self:
        return cls(
            database_url=setting_str(settings, "DATABASE_URL"),
            connect_timeout=setting_float(settings, "COLES_LEDGER_CONNECT_TIMEOUT"),
            job=setting_str(settings, "COLES_JOB") or None,
        )


class CrawlRunLedger:
    """Writes one ``crawl_runs`` row when the crawl ends: start and end, host, scrapyd job
    id, spider, finish reason, the monitors' verdict, SKUs per outcome (stats
    ``coles/outcome/*``) and all the stats.

    The run has an identity from its start, :attr:`run_key`: the pipeline stores it with
    every lookup (``crawler.get_extension(CrawlRunLedger)``) and the ledger row carries it,
    with ``distrust_reason`` when the run is distrusted (:func:`distrust_reason`); the
    prefill then ignores the run's outcomes without a barcode. A crawl killed before its
    row is written leaves lookups whose key names no row: they are trusted.

    Comes after the monitors in ``EXTENSIONS``. The ledger never fails a crawl: when the
    database cannot be reached the run is logged as not recorded and the crawl closes as
    it would have (``COLES_LEDGER_CONNECT_TIMEOUT`` bounds the wait on PostgreSQL).
    Enabled by ``COLES_RUN_LEDGER_ENABLED``.
    """

    def __init__(self, crawler: Crawler, config: LedgerConfig) -> None:
        self.crawler = crawler
        self.config = config
        self.run_key = uuid.uuid4().hex

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        settings = crawler.settings
        if not setting_bool(settings, "COLES_RUN_LEDGER_ENABLED"):
            raise NotConfigured
        ledger = cls(crawler, LedgerConfig.from_settings(settings))
        crawler.signals.connect(ledger.spider_closed, signal=signals.spider_closed)
        return ledger

    def record(self, reason: str) -> RunRecord:
        """The ledger row from the stats as they are now (read before any await)."""
        if self.crawler.stats is None:
            raise RuntimeError("the crawler has no stats collector")
        stats = dict(self.crawler.stats.get_stats())
        now = datetime.now(UTC)
        prefix = "coles/outcome/"
        return RunRecord(
            spider=getattr(self.crawler.spidercls, "name", None) or "unknown",
            job=self.config.job,
            started_at=_utc(stats.get("start_time"), now),
            finished_at=_utc(stats.get("finish_time"), now),
            finish_reason=str(stats.get("finish_reason") or reason),
            monitor_result=stats.get("monitor/result"),
            monitor_detail=stats.get("monitor/failures"),
            outcomes={
                key[len(prefix) :]: int(value)
                for key, value in sorted(stats.items())
                if key.startswith(prefix) and isinstance(value, int)
            },
            stats=_json_ready(stats),
            node=socket.gethostname(),
            run_key=self.run_key,
            distrust_reason=distrust_reason(stats),
        )

    def _write(self, run: RunRecord) -> int:
        engine = ledger_engine(self.config.database_url, self.config.connect_timeout)
        try:
            migrate(engine)
            with session_factory(engine).begin() as session:
                return record_crawl_run(session, run)
        finally:
            engine.dispose()

    async def spider_closed(self, reason: str) -> None:
        run = self.record(reason)
        try:
            run_id = await asyncio.to_thread(self._write, run)
        except DATABASE_ERRORS as exc:
            detail = error_detail(exc)
            logger.warning(
                "This run is not in the run ledger: the database %s is unreachable (%s)",
                redact(self.config.database_url),
                detail or type(exc).__name__,
            )
            return
        except Exception:
            # A bug here must not turn a good crawl into a failed one.
            logger.warning("This run is not in the run ledger: writing it failed", exc_info=True)
            return
        logger.info("Run %d recorded in the run ledger (%s)", run_id, run.finish_reason)
        if run.distrust_reason:
            again = sum(run.outcomes.get(outcome, 0) for outcome in NO_BARCODE_OUTCOMES)
            logger.warning(
                "Run %d is distrusted (%s): the next run asks again for its %d SKUs "
                "without a barcode",
                run_id,
                run.distrust_reason,
                again,
            )
