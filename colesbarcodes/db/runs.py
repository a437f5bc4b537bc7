"""The run ledger's writing side: one ``crawl_runs`` row per crawl and one ``import_runs``
row per import cycle, each written when it ends."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select

from colesbarcodes.db.models import CrawlRun, ImportRun

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy.orm import Session

__all__ = [
    "GTIN_OUTCOMES",
    "LOOKED_UP_OUTCOMES",
    "RECORD_OUTCOMES",
    "ImportRunRecord",
    "RunRecord",
    "recent_crawl_outcomes",
    "record_crawl_run",
    "record_import_run",
]

# Outcomes of SKUs that were asked of the site; the others (prefilled, recently_checked,
# duplicate) cost no request. Shares of "failed" and "found" are taken over these.
LOOKED_UP_OUTCOMES = ("found", "no_barcode", "not_found", "invalid_barcode", "failed")
# Of those, the SKUs the site answered with a product record, and the records that carried a
# GTIN (a valid one, or one that fails validation): the drift monitor's GTIN share is the
# second over the first (colesbarcodes/extensions/crawl_monitor.py).
RECORD_OUTCOMES = ("found", "no_barcode", "invalid_barcode")
GTIN_OUTCOMES = ("found", "invalid_barcode")


@dataclass
class RunRecord:
    """What the ledger keeps of one crawl (``stats`` must be JSON-ready)."""

    spider: str
    started_at: datetime
    finished_at: datetime
    finish_reason: str
    job: str | None = None
    monitor_result: str | None = None
    monitor_detail: str | None = None
    outcomes: dict[str, int] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    node: str | None = None
    run_key: str | None = None  # the identity its lookups were stored with
    distrust_reason: str | None = None  # None: its answers are trusted


def record_crawl_run(session: Session, run: RunRecord) -> int:
    """Insert the run; its id."""
    run_id: int = session.execute(
        insert(CrawlRun)
        .values(
            spider=run.spider[:100],
            job=None if run.job is None else run.job[:100],
            started_at=run.started_at,
            finished_at=run.finished_at,
            finish_reason=run.finish_reason[:1000],
            monitor_result=run.monitor_result,
            monitor_detail=None if run.monitor_detail is None else run.monitor_detail[:1000],
            outcomes=run.outcomes,
            stats=run.stats,
            node=None if run.node is None else run.node[:255],
            run_key=run.run_key,
            distrust_reason=None if run.distrust_reason is None else run.distrust_reason[:1000],
        )
        .returning(CrawlRun.id)
    ).scalar_one()
    return run_id


def recent_crawl_outcomes(session: Session, spider: str, limit: int = 100) -> list[dict[str, int]]:
    """SKUs per outcome of the latest ``limit`` recorded runs of ``spider``, newest first
    (one small JSON column per run: the runs' stats are not read)."""
    rows = session.scalars(
        select(CrawlRun.outcomes)
        .where(CrawlRun.spider == spider[:100])
        .order_by(CrawlRun.started_at.desc(), CrawlRun.id.desc())
        .limit(limit)
    )
    return [
        {str(k): int(v) for k, v in (outcomes or {}).items() if isinstance(v, int | float)}
        for outcomes in rows
    ]


@dataclass
class ImportRunRecord:
    """What the ledger keeps of one import cycle (``files`` and ``counts`` JSON-ready)."""

    node: str
    inbox: str
    started_at: datetime
    finished_at: datetime
    finish_reason: str
    files: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def record_import_run(session: Session, run: ImportRunRecord) -> int:
    """Insert the import run; its id."""
    run_id: int = session.execute(
        insert(ImportRun)
        .values(
            node=run.node[:255],
            inbox=run.inbox[-400:],
            started_at=run.started_at,
            finished_at=run.finished_at,
            finish_reason=run.finish_reason[:1000],
            files=run.files,
            counts=run.counts,
        )
        .returning(ImportRun.id)
    ).scalar_one()
    return run_id
