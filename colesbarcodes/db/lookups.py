"""The crawl's side of the database: what is already known, and storing lookup outcomes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, exists, func, insert, or_, select

from colesbarcodes.db.catalog import BatchStats, apply_lines
from colesbarcodes.db.models import CompanySku, CrawlRun, Lookup, Product, Store, StorePrice
from colesbarcodes.db.sqlutil import in_chunks, sql_in

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import datetime

    from sqlalchemy.orm import Session

    from colesbarcodes.inbox.lines import ProductLine

__all__ = [
    "NO_BARCODE_OUTCOMES",
    "LookupRow",
    "known_barcodes",
    "recent_outcomes",
    "record_lookups",
    "skus_without_barcode",
    "stored_for_entries",
    "stored_for_file",
    "trusted_lookup",
]

# Outcomes after which a SKU is not asked for again until the re-check age has passed.
NO_BARCODE_OUTCOMES = ("no_barcode", "not_found", "invalid_barcode")


@dataclass
class LookupRow:
    company: str
    sku: str
    outcome: str
    store_id: str | None = None
    barcode: str | None = None
    raw_barcode: str | None = None
    reason: str | None = None
    file: str | None = None
    job: str | None = None
    looked_up_at: datetime | None = None
    run_key: str | None = None


def known_barcodes(session: Session, company: str, skus: Sequence[str]) -> dict[str, str]:
    """Barcodes already stored for exactly these SKUs: one query (per 5,000 on SQLite).

    A SKU maps to one product, so a null barcode can never hide a real one; the rule is
    kept explicit anyway (first non-null wins) for databases holding older duplicates.
    """
    known: dict[str, str] = {}
    for part in in_chunks(session, sorted(set(skus))):
        rows = session.connection().execute(
            select(CompanySku.sku, Product.barcode)
            .join(Product, Product.id == CompanySku.product_id)
            .where(
                CompanySku.company == company,
                sql_in(session, CompanySku.sku, part),
                Product.barcode.is_not(None),
            )
        )
        for sku, barcode in rows:
            if barcode:
                known.setdefault(sku, barcode)
    return known


def trusted_lookup() -> ColumnElement[bool]:
    """A lookup stored by a run the ledger does not distrust: one without a run key (a
    crawl without ledger, or stored before runs had keys), one whose run has no ledger row
    (still running, or killed before it was written), or one whose run was not marked
    distrusted (``crawl_runs.distrust_reason``)."""
    return or_(
        Lookup.run_key.is_(None),
        ~exists().where(CrawlRun.run_key == Lookup.run_key, CrawlRun.distrust_reason.is_not(None)),
    )


def recent_outcomes(
    session: Session, company: str, skus: Sequence[str], since: datetime
) -> dict[str, tuple[str, datetime]]:
    """SKUs whose latest real lookup since ``since`` found no barcode (outcome, time).

    Outcomes stored by a distrusted run (its drift monitor failed, or the site answered
    it unreadably) are not counted: a bad night does not hide its SKUs for the re-check
    age. An earlier trusted outcome within the age still counts."""
    recent: dict[str, tuple[str, datetime]] = {}
    for part in in_chunks(session, sorted(set(skus))):
        rows = session.connection().execute(
            select(Lookup.sku, Lookup.outcome, func.max(Lookup.looked_up_at))
            .where(
                Lookup.company == company,
                sql_in(session, Lookup.sku, part),
                Lookup.outcome.in_(NO_BARCODE_OUTCOMES),
                Lookup.looked_up_at >= since,
                trusted_lookup(),
            )
            .group_by(Lookup.sku, Lookup.outcome)
        )
        for sku, outcome, at in rows:
            if sku not in recent or at > recent[sku][1]:
                recent[sku] = (outcome, at)
    return recent


def _believed() -> ColumnElement[bool]:
    """A stored outcome a resumed crawl takes as it is: any but the answers without a
    barcode of a distrusted run, which are asked again (the run may have been stopped
    before it finished the file, e.g. cancelled on a bad night)."""
    return or_(Lookup.outcome.not_in(NO_BARCODE_OUTCOMES), trusted_lookup())


def stored_for_file(session: Session, file: str) -> dict[str, str]:
    """SKU → outcome already stored for an inbox file (a resumed crawl skips them)."""
    return dict(
        session.connection()
        .execute(select(Lookup.sku, Lookup.outcome).where(Lookup.file == file, _believed()))
        .all()
    )


def stored_for_entries(
    session: Session, company: str, entries: Mapping[str, str | None]
) -> dict[str, str]:
    """SKU → outcome already stored for exactly these (SKU, inbox file) pairs.

    The frontier's counterpart of :func:`stored_for_file`: a SKU taken back from a worker
    that died after committing its outcome, but before acknowledging it, is found here.
    """
    stored: dict[str, str] = {}
    for part in in_chunks(session, sorted(entries)):
        rows = session.connection().execute(
            select(Lookup.sku, Lookup.file, Lookup.outcome).where(
                Lookup.company == company, sql_in(session, Lookup.sku, part), _believed()
            )
        )
        for sku, file, outcome in rows:
            if file is not None and entries.get(sku) == file:
                stored[sku] = outcome
    return stored


def record_lookups(
    session: Session,
    rows: Sequence[LookupRow],
    found: Sequence[tuple[int, ProductLine]],
    *,
    source: str,
) -> BatchStats:
    """Store found barcodes (with the loader's merge and conflict rules) and every outcome."""
    stats = apply_lines(session, found, source=source) if found else BatchStats()
    if rows:
        values: list[dict[str, Any]] = [
            {
                "company": r.company,
                "sku": r.sku,
                "store_id": r.store_id,
                "outcome": r.outcome,
                "barcode": r.barcode,
                "raw_barcode": None if r.raw_barcode is None else r.raw_barcode[:64],
                "reason": None if r.reason is None else r.reason[:1000],
                "file": r.file,
                "job": r.job,
                "looked_up_at": r.looked_up_at,
                "run_key": r.run_key,
            }
            for r in rows
        ]
        session.execute(insert(Lookup), values)
    return stats


def skus_without_barcode(
    session: Session, company: str, store_id: str | None = None, limit: int | None = None
) -> list[tuple[str, str | None]]:
    """(SKU, a store that sells it) for the company's products that have no barcode yet."""
    store = (
        select(func.min(Store.store_id))
        .join(StorePrice, StorePrice.store_pk == Store.id)
        .where(StorePrice.sku_pk == CompanySku.id)
        .correlate(CompanySku)
        .scalar_subquery()
    )
    query = (
        select(CompanySku.sku, store)
        .join(Product, Product.id == CompanySku.product_id)
        .where(CompanySku.company == company, Product.barcode.is_(None))
        .order_by(CompanySku.id)
    )
    if store_id is not None:
        query = query.where(
            select(StorePrice.sku_pk)
            .join(Store, Store.id == StorePrice.store_pk)
            .where(StorePrice.sku_pk == CompanySku.id, Store.store_id == store_id)
            .exists()
        )
    if limit:
        query = query.limit(limit)
    return [(sku, store_of) for sku, store_of in session.execute(query)]
