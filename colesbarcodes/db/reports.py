"""Read-only queries behind the data-quality report and the run lists: its parts are typed
in :mod:`colesbarcodes.db.report_data`."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypedDict

from sqlalchemy import Integer, case, distinct, func, literal_column, select

from colesbarcodes.db.lookups import NO_BARCODE_OUTCOMES
from colesbarcodes.db.models import (
    BarcodeConflict,
    CompanySku,
    CrawlRun,
    ImportedFile,
    ImportRun,
    Lookup,
    Product,
    ProductMerge,
    Store,
    StorePrice,
)
from colesbarcodes.db.sqlutil import in_chunks, sql_in

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from sqlalchemy.orm import Session

    from colesbarcodes.db.report_data import (
        CompanyCoverage,
        Conflict,
        ConflictFields,
        Conflicts,
        CrawlRunRow,
        DataQuality,
        FailingSku,
        FailingSkus,
        Merge,
        MergedProductCard,
        Merges,
        ProductCard,
        QualityReport,
        StoreCoverage,
        TimelineDay,
    )

__all__ = [
    "conflict_row",
    "coverage_timeline",
    "crawl_runs",
    "data_quality",
    "import_runs",
    "open_conflicts",
    "pct",
    "product_cards",
    "quality_report",
    "recent_merges",
    "repeated_failures",
    "sku_value",
    "utc_iso",
]


def pct(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 2) if whole else 0.0


def sku_value(company: str, sku: str) -> int | str:
    return int(sku) if company == "coles" and sku.isdigit() else sku


def data_quality(session: Session) -> DataQuality:
    """Products, with SKU and with barcode, per company and per store, and in total; and
    per company, its SKUs with a global GTIN that another company sells too."""
    from colesbarcodes.db.comparison import retailer_overlap  # it uses this module's helpers

    has_barcode = case((Product.barcode.is_not(None), 1), else_=0)
    total, with_barcode = session.execute(
        select(func.count(), func.coalesce(func.sum(has_barcode), 0)).select_from(Product)
    ).one()
    with_sku = session.scalar(select(func.count(distinct(CompanySku.product_id)))) or 0
    per_company: list[CompanyCoverage] = []
    sub = select(CompanySku.company, CompanySku.product_id).distinct().subquery()
    for company, products, barcoded in session.execute(
        select(sub.c.company, func.count(), func.sum(has_barcode.cast(Integer)))
        .join(Product, Product.id == sub.c.product_id)
        .group_by(sub.c.company)
        .order_by(sub.c.company)
    ):
        per_company.append(
            {
                "company": company,
                "products": products,
                "with_sku": products,
                "with_barcode": int(barcoded or 0),
                "barcode_pct": pct(int(barcoded or 0), products),
            }
        )
    per_store: list[StoreCoverage] = []
    store_sub = (
        select(StorePrice.store_pk, CompanySku.product_id)
        .join(CompanySku, CompanySku.id == StorePrice.sku_pk)
        .distinct()
        .subquery()
    )
    for company, store_id, name, products, barcoded in session.execute(
        select(Store.company, Store.store_id, Store.name, func.count(), func.sum(has_barcode))
        .join(store_sub, store_sub.c.store_pk == Store.id)
        .join(Product, Product.id == store_sub.c.product_id)
        .group_by(Store.company, Store.store_id, Store.name)
        .order_by(Store.company, Store.store_id)
    ):
        per_store.append(
            {
                "company": company,
                "store_id": store_id,
                "store_name": name,
                "products": products,
                "with_sku": products,
                "with_barcode": int(barcoded or 0),
                "barcode_pct": pct(int(barcoded or 0), products),
            }
        )
    return {
        "totals": {
            "products": total,
            "with_sku": with_sku,
            "with_barcode": int(with_barcode),
            "sku_pct": pct(with_sku, total),
            "barcode_pct": pct(int(with_barcode), total),
            "open_conflicts": session.scalar(
                select(func.count()).where(BarcodeConflict.resolved_at.is_(None))
            )
            or 0,
            "merges": session.scalar(select(func.count()).select_from(ProductMerge)) or 0,
        },
        "companies": per_company,
        "stores": per_store,
        "overlap": retailer_overlap(session),
    }


def _utc(value: datetime | None) -> datetime | None:
    """A stored time as an aware UTC datetime (SQLite hands back naive UTC ones)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utc_iso(value: datetime | None) -> str | None:
    """A stored time as ISO 8601 in UTC (``None`` stays ``None``)."""
    moment = _utc(value)
    return None if moment is None else moment.isoformat()


def _utc_day(session: Session, column: Any) -> Any:
    """The UTC calendar day of a stored time as ``YYYY-MM-DD`` text.

    The constants are inlined, not bound: PostgreSQL only accepts a grouped expression
    that is textually the one selected, and bound parameters would differ.
    """
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(
            func.timezone(literal_column("'UTC'"), column), literal_column("'YYYY-MM-DD'")
        )
    return func.strftime(literal_column("'%Y-%m-%d'"), column)


class _Span(TypedDict):
    started_at: str | None
    finished_at: str | None
    duration_s: float | None


def _span(started_at: datetime | None, finished_at: datetime | None) -> _Span:
    """A run's start and end (UTC, ISO 8601) and its length in seconds."""
    started, finished = _utc(started_at), _utc(finished_at)
    return {
        "started_at": utc_iso(started),
        "finished_at": utc_iso(finished),
        "duration_s": round((finished - started).total_seconds(), 1)
        if started and finished
        else None,
    }


def crawl_runs(session: Session, limit: int = 20, *, with_stats: bool = False) -> list[CrawlRunRow]:
    """The latest crawl runs of the run ledger, newest first.

    A distrusted run says why (``distrust_reason``) and how many SKUs the next run asks
    again (``asked_again``: its SKUs per outcome without a barcode, the outcomes the
    prefill no longer takes from it)."""
    runs: list[CrawlRunRow] = []
    for run in session.scalars(
        select(CrawlRun).order_by(CrawlRun.started_at.desc(), CrawlRun.id.desc()).limit(limit)
    ):
        outcomes = {k: int(v) for k, v in sorted((run.outcomes or {}).items())}
        row: CrawlRunRow = {
            "id": run.id,
            "spider": run.spider,
            "job": run.job,
            **_span(run.started_at, run.finished_at),
            "finish_reason": run.finish_reason,
            "monitor_result": run.monitor_result,
            "monitor_detail": run.monitor_detail,
            "skus": sum(outcomes.values()),
            "outcomes": outcomes,
            "node": run.node,
            "distrust_reason": run.distrust_reason,
            "asked_again": sum(outcomes.get(o, 0) for o in NO_BARCODE_OUTCOMES)
            if run.distrust_reason
            else 0,
        }
        if with_stats:
            row["stats"] = run.stats
        runs.append(row)
    return runs


def import_runs(session: Session, limit: int = 20) -> list[dict[str, Any]]:
    """The latest import cycles of the run ledger, newest first."""
    runs = []
    for run in session.scalars(
        select(ImportRun).order_by(ImportRun.started_at.desc(), ImportRun.id.desc()).limit(limit)
    ):
        runs.append(
            {
                "id": run.id,
                "node": run.node,
                "inbox": run.inbox,
                **_span(run.started_at, run.finished_at),
                "finish_reason": run.finish_reason,
                "files": run.files or [],
                "counts": {k: int(v) for k, v in sorted((run.counts or {}).items())},
            }
        )
    return runs


def coverage_timeline(session: Session) -> list[TimelineDay]:
    """Barcode coverage at the end of each day with activity, with that day's imports and
    lookups, oldest first.

    Coverage is rebuilt from what the database keeps: a product counts from the day it was
    created (``products.created_at``), its barcode from the first ``found`` lookup of that
    barcode (``lookups``), or from the product's creation when no crawl found it (it came
    with an import). The last day therefore shows today's figures, the ones of
    :func:`data_quality`; earlier days are estimates (a barcode an import added to an
    existing product is counted from the product's creation). Imports per day come from the
    import ledger (``imported_files``), lookups per day and outcome from ``lookups``.
    """
    days: dict[str, dict[str, Any]] = defaultdict(
        lambda: {
            "new_products": 0,
            "new_barcodes": 0,
            "files_imported": 0,
            "lines_imported": 0,
            "lookups": 0,
            "outcomes": {},
        }
    )
    created = _utc_day(session, Product.created_at)
    for day, count in session.execute(
        select(created, func.count()).select_from(Product).group_by(created)
    ):
        days[day]["new_products"] += count
    first_found = (
        select(Lookup.barcode.label("barcode"), func.min(Lookup.looked_up_at).label("at"))
        .where(Lookup.outcome == "found", Lookup.barcode.is_not(None))
        .group_by(Lookup.barcode)
        .subquery()
    )
    found = _utc_day(session, first_found.c.at)
    for created_day, found_day, count in session.execute(
        select(created, found, func.count())
        .select_from(Product)
        .outerjoin(first_found, first_found.c.barcode == Product.barcode)
        .where(Product.barcode.is_not(None))
        .group_by(created, found)
    ):
        days[max(created_day, found_day or created_day)]["new_barcodes"] += count
    looked_up = _utc_day(session, Lookup.looked_up_at)
    for day, outcome, count in session.execute(
        select(looked_up, Lookup.outcome, func.count()).group_by(looked_up, Lookup.outcome)
    ):
        days[day]["lookups"] += count
        days[day]["outcomes"][outcome] = count
    imported = _utc_day(session, func.coalesce(ImportedFile.finished_at, ImportedFile.started_at))
    for day, files, lines in session.execute(
        select(imported, func.count(), func.coalesce(func.sum(ImportedFile.lines_imported), 0))
        .select_from(ImportedFile)
        .group_by(imported)
    ):
        days[day]["files_imported"] += files
        days[day]["lines_imported"] += int(lines)
    timeline: list[TimelineDay] = []
    products = barcodes = 0
    for day in sorted(days):
        row = days[day]
        products += row["new_products"]
        barcodes += row["new_barcodes"]
        timeline.append(
            {
                "day": day,
                "products": products,
                "with_barcode": barcodes,
                "barcode_pct": pct(barcodes, products),
                "new_products": row["new_products"],
                "new_barcodes": row["new_barcodes"],
                "files_imported": row["files_imported"],
                "lines_imported": row["lines_imported"],
                "lookups": row["lookups"],
                "outcomes": dict(sorted(row["outcomes"].items())),
            }
        )
    return timeline


def conflict_row(
    conflict: BarcodeConflict, iso: Callable[[datetime | None], str | None]
) -> ConflictFields:
    """What a barcode conflict says, as the report and ``inspect-product`` show it (each
    writes its times with ``iso``)."""
    return {
        "company": conflict.company,
        "sku": sku_value(conflict.company, conflict.sku),
        "existing_barcode": conflict.existing_barcode or None,
        "offered_barcode": conflict.offered_barcode,
        "reason": conflict.reason,
        "source": conflict.source,
        "detected_at": iso(conflict.detected_at),
    }


def open_conflicts(session: Session, limit: int = 200) -> Conflicts:
    """Unresolved barcode conflicts, newest first: ``{"total": n, "rows": [...]}``."""
    total = session.scalar(select(func.count()).where(BarcodeConflict.resolved_at.is_(None)))
    rows: list[Conflict] = [
        {"id": c.id, "product_id": c.product_id, **conflict_row(c, utc_iso)}
        for c in session.scalars(
            select(BarcodeConflict)
            .where(BarcodeConflict.resolved_at.is_(None))
            .order_by(BarcodeConflict.detected_at.desc(), BarcodeConflict.id.desc())
            .limit(limit)
        )
    ]
    return {"total": total or 0, "rows": rows}


def recent_merges(session: Session, limit: int = 50) -> Merges:
    """The latest product merges, newest first: ``{"total": n, "rows": [...]}``."""
    total = session.scalar(select(func.count()).select_from(ProductMerge))
    rows: list[Merge] = [
        {
            "survivor_id": m.survivor_id,
            "merged_id": m.merged_id,
            "merged_name": (m.snapshot or {}).get("name"),
            "reason": m.reason,
            "source": m.source,
            "merged_at": utc_iso(m.merged_at),
        }
        for m in session.scalars(
            select(ProductMerge)
            .order_by(ProductMerge.merged_at.desc(), ProductMerge.id.desc())
            .limit(limit)
        )
    ]
    return {"total": total or 0, "rows": rows}


def repeated_failures(session: Session, min_failures: int = 2, limit: int = 200) -> FailingSkus:
    """SKUs with at least ``min_failures`` ``failed`` lookups: how often, when, why the last
    time, and whether they still fail (their latest lookup failed). Still failing first,
    then by number of failures. ``{"total": n, "rows": [...]}``."""
    failing = (
        select(
            Lookup.company,
            Lookup.sku,
            func.count().label("failures"),
            func.min(Lookup.looked_up_at).label("first"),
            func.max(Lookup.looked_up_at).label("last"),
        )
        .where(Lookup.outcome == "failed")
        .group_by(Lookup.company, Lookup.sku)
        .having(func.count() >= min_failures)
    )
    total = session.scalar(select(func.count()).select_from(failing.subquery()))
    found = session.execute(
        failing.order_by(func.count().desc(), func.max(Lookup.looked_up_at).desc()).limit(limit)
    ).all()
    by_company: dict[str, list[str]] = defaultdict(list)
    for row in found:
        by_company[row.company].append(row.sku)
    latest: dict[tuple[str, str], tuple[str, str | None]] = {}
    failed_reason: dict[tuple[str, str], str | None] = {}
    products: dict[tuple[str, str], int] = {}
    for company, skus in by_company.items():
        for part in in_chunks(session, skus):
            for sku, outcome, reason in session.execute(
                select(Lookup.sku, Lookup.outcome, Lookup.reason)
                .where(Lookup.company == company, sql_in(session, Lookup.sku, part))
                .order_by(Lookup.looked_up_at, Lookup.id)
            ):
                latest[(company, sku)] = (outcome, reason)
                if outcome == "failed":
                    failed_reason[(company, sku)] = reason
            for sku, product_id in session.execute(
                select(CompanySku.sku, CompanySku.product_id).where(
                    CompanySku.company == company, sql_in(session, CompanySku.sku, part)
                )
            ):
                products[(company, sku)] = product_id
    rows: list[FailingSku] = []
    for row in found:
        key = (row.company, row.sku)
        outcome = latest.get(key, ("failed", None))[0]
        rows.append(
            {
                "company": row.company,
                "sku": sku_value(row.company, row.sku),
                "product_id": products.get(key),
                "failures": row.failures,
                "first_failed_at": utc_iso(row.first),
                "last_failed_at": utc_iso(row.last),
                "last_reason": failed_reason.get(key),
                "latest_outcome": outcome,
                "still_failing": outcome == "failed",
            }
        )
    rows.sort(key=lambda r: (not r["still_failing"], -r["failures"]))
    return {"total": total or 0, "rows": rows}


def product_cards(
    session: Session, ids: Iterable[int]
) -> dict[int, ProductCard | MergedProductCard]:
    """A short record per product id (name, brand, size, barcode, SKUs), or, for an id that
    was merged away, the product it was merged into."""
    wanted = sorted(set(ids))
    cards: dict[int, ProductCard | MergedProductCard] = {}
    for part in in_chunks(session, wanted):
        found: dict[int, ProductCard] = {}
        for p in session.execute(
            select(
                Product.id,
                Product.name,
                Product.brand,
                Product.size,
                Product.barcode,
                Product.barcode_scope,
            ).where(sql_in(session, Product.id, part))
        ):
            found[p.id] = {
                "id": p.id,
                "name": p.name,
                "brand": p.brand,
                "size": p.size,
                "barcode": p.barcode,
                "barcode_scope": p.barcode_scope,
                "company_skus": {},
            }
        for product_id, company, sku in session.execute(
            select(CompanySku.product_id, CompanySku.company, CompanySku.sku)
            .where(sql_in(session, CompanySku.product_id, part))
            .order_by(CompanySku.company, CompanySku.sku)
        ):
            found[product_id]["company_skus"].setdefault(company, []).append(
                sku_value(company, sku)
            )
        cards.update(found)
        for merged_id, survivor_id, reason, snapshot in session.execute(
            select(
                ProductMerge.merged_id,
                ProductMerge.survivor_id,
                ProductMerge.reason,
                ProductMerge.snapshot,
            ).where(sql_in(session, ProductMerge.merged_id, part))
        ):
            if merged_id not in cards:
                cards[merged_id] = {
                    "id": merged_id,
                    "name": (snapshot or {}).get("name"),
                    "merged_into": survivor_id,
                    "merge_reason": reason,
                }
    return cards


def quality_report(
    session: Session, *, runs: int = 20, rows: int = 200, differences: int = 20
) -> QualityReport:
    """Everything the data-quality report shows: :func:`data_quality` (the same figures as
    ``coles-loader data-quality``), coverage over time, the latest crawl runs, open
    conflicts, recent merges, repeatedly failing SKUs, the ``differences`` products sold by
    both retailers whose prices differ most (each at its largest store pairing), and the
    products they name."""
    from colesbarcodes.db.comparison import compare_prices

    conflicts = open_conflicts(session, rows)
    merges = recent_merges(session, rows)
    failing = repeated_failures(session, limit=rows)
    referenced = [c["product_id"] for c in conflicts["rows"]]
    referenced += [m["survivor_id"] for m in merges["rows"]]
    referenced += [m["merged_id"] for m in merges["rows"]]
    referenced += [f["product_id"] for f in failing["rows"] if f["product_id"] is not None]
    both = compare_prices(session, limit=differences, per_product=True)
    referenced += [p["product_id"] for p in both["rows"]]
    cards = product_cards(session, referenced)
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "data_quality": data_quality(session),
        "timeline": coverage_timeline(session),
        "runs": crawl_runs(session, runs),
        "conflicts": conflicts,
        "merges": merges,
        "failing_skus": failing,
        "both_retailers": both,
        "products": [cards[i] for i in sorted(cards)],
    }
