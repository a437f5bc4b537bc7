"""Both retailers side by side: the products with a global GTIN that two companies sell, and
their prices at each company's stores.

A product sold by both is one row of ``products`` with a SKU of each company: the import
merges the products of one global GTIN, and never those of an in-store or company-internal
code, so only ``barcode_scope = 'global'`` pairs. A **pairing** is one store of the first
company and one of the second whose current price (``store_prices``) of the product's SKU is
known: every Coles store's price against Woolworths' online price (store id ``online``).
The difference is the first company's price minus the second's.

The pairings are one statement with joins whatever the database's size, never one per
product, each retailer's prices read by its stores' keys (docs: README, "Both retailers side
by side").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, case, distinct, exists, func, or_, select, type_coerce
from sqlalchemy.orm import aliased

from colesbarcodes.db.models import CompanySku, Money, Product, Store, StorePrice
from colesbarcodes.db.reports import pct, sku_value, utc_iso
from colesbarcodes.db.sqlutil import sql_in
from colesbarcodes.gtin import GtinScope

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Mapping, Sequence

    from sqlalchemy import Select
    from sqlalchemy.orm import Session

    from colesbarcodes.db.report_data import (
        BothRetailers,
        PricePair,
        RetailerOverlap,
        RetailerPrice,
    )

__all__ = [
    "DEFAULT_RETAILERS",
    "GLOBAL",
    "compare_prices",
    "known_stores",
    "retailer_overlap",
    "retailers_present",
]

DEFAULT_RETAILERS = ("coles", "woolworths")
GLOBAL = GtinScope.GLOBAL.value  # the only barcodes that are one trade item everywhere


def retailers_present(session: Session, companies: Iterable[str]) -> list[str]:
    """The companies of ``companies`` with at least one SKU in the database (each an index
    probe on ``company_skus``)."""
    wanted = list(companies)
    found = session.execute(
        select(*(exists().where(CompanySku.company == c) for c in wanted))
    ).one()
    return [c for c, there in zip(wanted, found, strict=True) if there]


def known_stores(
    session: Session, candidates: Mapping[str, Collection[str]]
) -> dict[str, set[str]]:
    """Of the store ids asked per company, those the database knows."""
    known: dict[str, set[str]] = {company: set() for company in candidates}
    wanted = [
        and_(Store.company == company, Store.store_id.in_(sorted(ids)))
        for company, ids in candidates.items()
        if ids
    ]
    if wanted:
        for company, store_id in session.execute(
            select(Store.company, Store.store_id).where(or_(*wanted))
        ):
            known[company].add(store_id)
    return known


def _store_keys(
    session: Session, retailers: Sequence[str], stores: Mapping[str, Collection[str]]
) -> dict[str, list[int]]:
    """Per retailer, the keys of its stores compared (all of them, or those of ``stores``):
    the price rows are then read by their primary key's first column, one stretch per
    store, instead of scanning every company's prices for one retailer's."""
    keys: dict[str, list[int]] = {company: [] for company in retailers}
    for company, store_id, key in session.execute(
        select(Store.company, Store.store_id, Store.id).where(Store.company.in_(retailers))
    ):
        if not stores.get(company) or store_id in stores[company]:
            keys[company].append(key)
    return keys


def _pairings(
    session: Session, retailers: Sequence[str], store_keys: Mapping[str, Sequence[int]]
) -> tuple[Select[Any], Any]:
    """The pairings of the two retailers' prices at the stores of ``store_keys``, one row
    each: product, each side's SKU, store, price and when it was seen; and the difference,
    rounded to a tenth of a cent so that SQLite's floating-point prices compare as
    PostgreSQL's exact ones do."""
    columns: list[Any] = [
        Product.id.label("product_id"),
        Product.name.label("name"),
        Product.barcode.label("gtin"),
    ]
    sides = []
    for n, company in enumerate(retailers):
        sku = aliased(CompanySku, name=f"sku_{n}")
        price = aliased(StorePrice, name=f"price_{n}")
        store = aliased(Store, name=f"store_{n}")
        sides.append((company, sku, price, store))
        columns += [
            sku.sku.label(f"sku_{n}"),
            store.store_id.label(f"store_{n}"),
            price.price.label(f"price_{n}"),
            price.last_seen.label(f"seen_{n}"),
        ]
    price_a, price_b = (price for _, _, price, _ in sides)
    difference = type_coerce(func.round(price_a.price - price_b.price, 3), Money)
    statement = select(*columns, difference.label("difference")).select_from(Product)
    conditions: list[Any] = [Product.barcode_scope == GLOBAL, Product.barcode.is_not(None)]
    for company, sku, price, store in sides:
        statement = (
            statement.join(sku, and_(sku.product_id == Product.id, sku.company == company))
            .join(price, price.sku_pk == sku.id)
            .join(store, store.id == price.store_pk)
        )
        conditions += [
            price.price.is_not(None),
            sql_in(session, price.store_pk, store_keys[company]),
        ]
    return statement.where(*conditions), difference


def _products_sold_by_both(session: Session, retailers: Sequence[str]) -> int:
    """Products with a global GTIN and a SKU of each retailer (priced or not)."""
    first, second = (aliased(CompanySku) for _ in retailers)
    return (
        session.scalar(
            select(func.count(distinct(Product.id)))
            .join(first, and_(first.product_id == Product.id, first.company == retailers[0]))
            .join(second, and_(second.product_id == Product.id, second.company == retailers[1]))
            .where(Product.barcode_scope == GLOBAL, Product.barcode.is_not(None))
        )
        or 0
    )


def compare_prices(
    session: Session,
    retailers: Sequence[str] = DEFAULT_RETAILERS,
    *,
    stores: Mapping[str, Collection[str]] | None = None,
    min_difference: float = 0.0,
    limit: int | None = None,
    per_product: bool = False,
) -> BothRetailers:
    """The pairings of the two ``retailers``' prices, largest absolute difference first.

    ``stores``: per company, the store ids to keep (a company not named keeps all of its
    stores); ``min_difference``: the smallest absolute difference shown, in dollars;
    ``per_product``: one row per product, its largest difference, with how many pairings it
    has. ``products`` counts the products both sell, whatever the filters; ``pairings`` the
    rows that match them, before ``limit``.
    """
    if len(retailers) != 2 or retailers[0] == retailers[1]:
        raise ValueError(f"two different companies to compare, not {list(retailers)!r}")
    store_keys = _store_keys(session, retailers, stores or {})
    pairs, difference = _pairings(session, retailers, store_keys)
    if min_difference > 0:
        pairs = pairs.where(func.abs(difference) >= min_difference)
    if per_product:
        c = pairs.selected_columns
        order = (func.abs(c.difference).desc(), c.store_0, c.store_1, c.sku_0, c.sku_1)
        ranked = pairs.add_columns(
            func.row_number().over(partition_by=c.product_id, order_by=order).label("rank"),
            func.count().over(partition_by=c.product_id).label("product_pairings"),
        ).subquery()
        pairs = select(ranked).where(ranked.c.rank == 1)
    # the total beside each row, counted before the sort: the sort then keeps only the
    # rows asked for (a top-N sort), where a window in the sorted query sorts every row
    counted = pairs.subquery()
    found = select(counted, func.count().over().label("total")).subquery()
    statement = select(found).order_by(
        func.abs(found.c.difference).desc(),
        found.c.gtin,
        found.c.store_0,
        found.c.store_1,
        found.c.sku_0,
        found.c.sku_1,
    )
    if limit is not None:
        statement = statement.limit(limit)
    total = 0
    rows: list[PricePair] = []
    for row in session.execute(statement).mappings() if all(store_keys.values()) else ():
        total = row["total"]
        prices: list[RetailerPrice] = [
            {
                "company": company,
                "sku": sku_value(company, row[f"sku_{n}"]),
                "store_id": row[f"store_{n}"],
                "price": float(row[f"price_{n}"]),
                "last_seen": utc_iso(row[f"seen_{n}"]),
            }
            for n, company in enumerate(retailers)
        ]
        pair: PricePair = {
            "product_id": row["product_id"],
            "name": row["name"],
            "gtin": row["gtin"],
            "prices": prices,
            "difference": float(row["difference"]),
        }
        if per_product:
            pair["pairings"] = row["product_pairings"]
        rows.append(pair)
    return {
        "retailers": list(retailers),
        "products": _products_sold_by_both(session, retailers),
        "pairings": total,
        "rows": rows,
    }


def retailer_overlap(session: Session) -> list[RetailerOverlap]:
    """Per company: its SKUs, those whose product has a global GTIN, and of those the ones
    whose product another company sells too."""
    shared = (
        select(CompanySku.product_id)
        .group_by(CompanySku.product_id)
        .having(func.count(distinct(CompanySku.company)) > 1)
        .subquery()
    )
    is_global = Product.barcode_scope == GLOBAL
    overlap: list[RetailerOverlap] = []
    for company, skus, global_skus, also_sold in session.execute(
        select(
            CompanySku.company,
            func.count(),
            func.coalesce(func.sum(case((is_global, 1), else_=0)), 0),
            func.coalesce(
                func.sum(case((and_(is_global, shared.c.product_id.is_not(None)), 1), else_=0)),
                0,
            ),
        )
        .join(Product, Product.id == CompanySku.product_id)
        .outerjoin(shared, shared.c.product_id == CompanySku.product_id)
        .group_by(CompanySku.company)
        .order_by(CompanySku.company)
    ):
        overlap.append(
            {
                "company": company,
                "skus": skus,
                "with_global_gtin": int(global_skus),
                "also_sold_by_other": int(also_sold),
                "also_sold_pct": pct(int(also_sold), int(global_skus)),
            }
        )
    return overlap
