"""Read-only queries behind the diagnostic commands (analyze-store, find-sku,
inspect-product, compare-store-skus): plain dicts and lists, ready for JSON."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import case, func, select

from colesbarcodes.db.models import (
    BarcodeConflict,
    CompanySku,
    PriceHistory,
    Product,
    ProductGroup,
    ProductGroupMember,
    ProductMerge,
    Store,
    StorePrice,
)
from colesbarcodes.db.reports import conflict_row, pct, sku_value

if TYPE_CHECKING:
    from collections.abc import Iterable

    from sqlalchemy.orm import Session


__all__ = [
    "analyze_store",
    "company_skus",
    "compare_store_skus",
    "find_sku",
    "inspect_product",
    "store_exists",
    "store_skus",
]


def company_skus(session: Session, product_id: int) -> dict[str, list[int | str]]:
    """The ``{"coles": [122234]}`` view of a product's SKUs."""
    view: dict[str, list[int | str]] = {}
    for company, sku in session.execute(
        select(CompanySku.company, CompanySku.sku)
        .where(CompanySku.product_id == product_id)
        .order_by(CompanySku.company, CompanySku.sku)
    ):
        view.setdefault(company, []).append(sku_value(company, sku))
    return view


def _store_pk(session: Session, company: str, store_id: str) -> int | None:
    return session.scalar(
        select(Store.id).where(Store.company == company, Store.store_id == store_id)
    )


def store_exists(session: Session, company: str, store_id: str) -> bool:
    """Whether the database knows this store of the company."""
    return _store_pk(session, company, store_id) is not None


def analyze_store(session: Session, company: str, store_id: str) -> dict[str, Any] | None:
    """Field presence for the products priced at one store."""
    store_pk = _store_pk(session, company, store_id)
    if store_pk is None:
        return None

    def present(column: Any) -> Any:
        return func.sum(case((column.is_not(None), 1), else_=0))

    row = session.execute(
        select(
            func.count(),
            present(Product.name),
            present(Product.brand),
            present(Product.size),
            present(Product.barcode),
            present(StorePrice.price),
            present(StorePrice.was_price),
            present(StorePrice.unit_price),
            present(StorePrice.available),
            present(StorePrice.url),
            func.min(StorePrice.last_seen),
            func.max(StorePrice.last_seen),
        )
        .select_from(StorePrice)
        .join(CompanySku, CompanySku.id == StorePrice.sku_pk)
        .join(Product, Product.id == CompanySku.product_id)
        .where(StorePrice.store_pk == store_pk)
    ).one()
    total = row[0]
    names = [
        "name",
        "brand",
        "size",
        "barcode",
        "price",
        "was_price",
        "unit_price",
        "available",
        "url",
    ]
    fields = {
        name: {"present": int(row[i + 1] or 0), "pct": pct(int(row[i + 1] or 0), total)}
        for i, name in enumerate(names)
    }
    return {
        "company": company,
        "store_id": store_id,
        "products": total,
        "fields": fields,
        "first_seen": row[10].isoformat() if row[10] else None,
        "last_seen": row[11].isoformat() if row[11] else None,
    }


def find_sku(session: Session, company: str, sku: str) -> dict[str, Any] | None:
    row = session.execute(
        select(Product.id, Product.name, Product.brand, Product.size, Product.barcode)
        .join(CompanySku, CompanySku.product_id == Product.id)
        .where(CompanySku.company == company, CompanySku.sku == sku)
    ).first()
    if row is None:
        return None
    stores = session.scalar(
        select(func.count())
        .select_from(StorePrice)
        .join(CompanySku, CompanySku.id == StorePrice.sku_pk)
        .where(CompanySku.company == company, CompanySku.sku == sku)
    )
    return {
        "company": company,
        "sku": sku_value(company, sku),
        "product_id": row.id,
        "name": row.name,
        "brand": row.brand,
        "size": row.size,
        "barcode": row.barcode,
        "stores_priced": stores,
        "company_skus": company_skus(session, row.id),
    }


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def inspect_product(session: Session, product_id: int) -> dict[str, Any] | None:
    """Every field of a product with its SKUs, prices, merges, conflicts and group.

    For a product that was merged away, the record says so and names the survivor.
    """
    product = session.get(Product, product_id)
    if product is None:
        merge = session.scalar(select(ProductMerge).where(ProductMerge.merged_id == product_id))
        if merge is None:
            return None
        return {
            "id": product_id,
            "merged_into": merge.survivor_id,
            "merge": {
                "reason": merge.reason,
                "at": _iso(merge.merged_at),
                "snapshot": merge.snapshot,
            },
        }
    prices = [
        {
            "company": company,
            "store_id": store_id,
            "sku": sku_value(company, sku),
            "price": price,
            "was_price": was,
            "unit_price": unit,
            "available": available,
            "url": url,
            "last_seen": _iso(seen),
        }
        for company, store_id, sku, price, was, unit, available, url, seen in session.execute(
            select(
                Store.company,
                Store.store_id,
                CompanySku.sku,
                StorePrice.price,
                StorePrice.was_price,
                StorePrice.unit_price,
                StorePrice.available,
                StorePrice.url,
                StorePrice.last_seen,
            )
            .join(Store, Store.id == StorePrice.store_pk)
            .join(CompanySku, CompanySku.id == StorePrice.sku_pk)
            .where(CompanySku.product_id == product_id)
            .order_by(Store.company, Store.store_id)
        )
    ]
    history = session.scalar(
        select(func.count())
        .select_from(PriceHistory)
        .join(CompanySku, CompanySku.id == PriceHistory.sku_pk)
        .where(CompanySku.product_id == product_id)
    )
    merges = [
        {
            "merged_id": m.merged_id,
            "reason": m.reason,
            "source": m.source,
            "at": _iso(m.merged_at),
            "snapshot": m.snapshot,
        }
        for m in session.scalars(
            select(ProductMerge)
            .where(ProductMerge.survivor_id == product_id)
            .order_by(ProductMerge.id)
        )
    ]
    conflicts = [
        {**conflict_row(c, _iso), "resolved_at": _iso(c.resolved_at)}
        for c in session.scalars(
            select(BarcodeConflict)
            .where(BarcodeConflict.product_id == product_id)
            .order_by(BarcodeConflict.id)
        )
    ]
    group = session.execute(
        select(ProductGroup.id, ProductGroup.key)
        .join(ProductGroupMember, ProductGroupMember.group_id == ProductGroup.id)
        .where(ProductGroupMember.product_id == product_id)
    ).first()
    return {
        "id": product.id,
        "name": product.name,
        "brand": product.brand,
        "size": product.size,
        "barcode": product.barcode,
        "barcode_scope": product.barcode_scope,
        "created_at": _iso(product.created_at),
        "updated_at": _iso(product.updated_at),
        "company_skus": company_skus(session, product.id),
        "prices": prices,
        "price_history_rows": history,
        "merges": merges,
        "conflicts": conflicts,
        "group": None if group is None else {"id": group.id, "key": group.key},
    }


def store_skus(session: Session, company: str, store_id: str) -> set[str]:
    return set(
        session.scalars(
            select(CompanySku.sku)
            .join(StorePrice, StorePrice.sku_pk == CompanySku.id)
            .join(Store, Store.id == StorePrice.store_pk)
            .where(Store.company == company, Store.store_id == store_id)
        )
    )


def compare_store_skus(
    session: Session, company: str, store_id: str, file_skus: Iterable[str], sample: int = 20
) -> dict[str, Any]:
    """SKUs in both a file and the database's prices for a store, only in one, only in the other."""
    in_file = set(file_skus)
    in_db = store_skus(session, company, store_id)

    def listing(values: set[str]) -> list[int | str]:
        ordered = sorted(values, key=lambda s: (len(s), s))
        return [sku_value(company, s) for s in ordered[:sample]]

    both, only_file, only_db = in_file & in_db, in_file - in_db, in_db - in_file
    return {
        "company": company,
        "store_id": store_id,
        "in_both": len(both),
        "only_in_file": len(only_file),
        "only_in_database": len(only_db),
        "only_in_file_sample": listing(only_file),
        "only_in_database_sample": listing(only_db),
    }
