"""The barcode rules, on SQLite and PostgreSQL: merges, conflicts, no lost barcodes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import func, select

from colesbarcodes.db import batch_read
from colesbarcodes.db.catalog import apply_lines
from colesbarcodes.db.diagnostics import company_skus
from colesbarcodes.db.engine import session_factory
from colesbarcodes.db.models import (
    BarcodeConflict,
    CompanySku,
    PriceHistory,
    Product,
    ProductMerge,
    StorePrice,
)
from colesbarcodes.inbox.lines import parse_object

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

MILK = "9300633600082"
BREAD = "9300633600099"


@pytest.fixture(autouse=True, params=["per SKU", "by catalogue"])
def product_reads(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """A batch reads its SKUs' products key by key, or (PostgreSQL) with the company's whole
    catalogue once it names enough of its SKUs (``CATALOGUE_READ_FROM``): the rules come out
    the same either way."""
    if request.param == "by catalogue":
        monkeypatch.setattr(batch_read, "CATALOGUE_READ_FROM", 1)
        monkeypatch.setattr(batch_read, "CATALOGUE_SHARE", 10**9)
    return str(request.param)


def apply(engine: Engine, *rows: dict[str, Any], source: str = "test.jsonl") -> Any:
    lines = []
    for number, row in enumerate(rows, 1):
        line = parse_object(
            {"store_id": "0584", "scraped_at": f"2026-11-2{number % 9}T00:00:00Z", **row}
        )
        assert line is not None
        lines.append((number, line))
    with session_factory(engine).begin() as session:
        return apply_lines(session, lines, source=source)


def product_of(engine: Engine, sku: int | str, company: str = "coles") -> Product:
    with session_factory(engine)() as session:
        return session.scalars(
            select(Product)
            .join(CompanySku)
            .where(CompanySku.company == company, CompanySku.sku == str(sku))
        ).one()


def count(engine: Engine, model: Any) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(model)) or 0


def test_new_skus_become_products_with_their_barcode(engine: Engine) -> None:
    stats = apply(engine, {"sku": 1, "name": "Milk", "barcode": MILK}, {"sku": 2, "name": "Bread"})
    assert (stats.products_created, stats.skus_created, stats.barcodes_set) == (2, 2, 1)
    assert product_of(engine, 1).barcode == MILK
    assert product_of(engine, 2).barcode is None


def test_a_null_barcode_never_overwrites_a_real_one(engine: Engine) -> None:
    """The old tool's bug: a duplicate row without a barcode hid the barcode of the first."""
    apply(engine, {"sku": 1, "name": "Milk", "barcode": MILK})
    apply(engine, {"sku": 1, "name": "Milk", "barcode": None}, {"sku": 1, "name": "Milk"})
    assert product_of(engine, 1).barcode == MILK


def test_a_new_sku_with_a_known_barcode_joins_that_product(engine: Engine) -> None:
    apply(engine, {"sku": 1, "name": "Milk", "barcode": MILK})
    apply(
        engine,
        {
            "company": "woolworths",
            "store_id": "1234",
            "sku": "W9",
            "name": "Milk 2L",
            "barcode": MILK,
        },
    )
    coles, woolies = product_of(engine, 1), product_of(engine, "W9", "woolworths")
    assert coles.id == woolies.id
    with session_factory(engine)() as session:
        assert company_skus(session, coles.id) == {"coles": [1], "woolworths": ["W9"]}


def test_same_barcode_on_two_products_merges_them_and_records_the_merge(engine: Engine) -> None:
    apply(engine, {"sku": 1, "name": "Milk", "barcode": MILK, "price": 2.0})
    apply(engine, {"sku": 2, "name": "Milk (dup)", "brand": "Coles", "price": 2.1})
    loser = product_of(engine, 2)
    stats = apply(engine, {"sku": 2, "barcode": MILK}, source="late.jsonl")
    assert stats.merges == 1
    survivor = product_of(engine, 1)
    assert product_of(engine, 2).id == survivor.id  # SKU 2 now points at the survivor
    assert survivor.brand == "Coles"  # the survivor's gaps are filled from the merged row
    with session_factory(engine)() as session:
        merge = session.scalars(select(ProductMerge)).one()
        assert (merge.survivor_id, merge.merged_id) == (survivor.id, loser.id)
        assert merge.reason == f"same barcode {MILK}"
        assert merge.source == "late.jsonl:1"
        assert merge.snapshot["name"] == "Milk (dup)"
        assert merge.snapshot["skus"] == [{"company": "coles", "sku": "2"}]
        assert session.get(Product, loser.id) is None
        # prices and history followed the SKU to the survivor
        prices = session.scalars(
            select(StorePrice)
            .join(CompanySku, CompanySku.id == StorePrice.sku_pk)
            .where(CompanySku.product_id == survivor.id)
        ).all()
        assert sorted(p.price or 0 for p in prices) == [2.0, 2.1]
    assert count(engine, Product) == 1


def test_a_different_barcode_is_recorded_as_a_conflict_and_the_old_one_kept(engine: Engine) -> None:
    apply(engine, {"sku": 1, "name": "Milk", "barcode": MILK})
    stats = apply(engine, {"sku": 1, "barcode": BREAD}, source="clash.jsonl")
    assert stats.conflicts == 1
    assert product_of(engine, 1).barcode == MILK
    with session_factory(engine)() as session:
        conflict = session.scalars(select(BarcodeConflict)).one()
        assert (conflict.existing_barcode, conflict.offered_barcode) == (MILK, BREAD)
        assert conflict.source == "clash.jsonl:1"
        assert conflict.product_id == product_of(engine, 1).id
    apply(engine, {"sku": 1, "barcode": BREAD}, source="clash.jsonl")
    assert count(engine, BarcodeConflict) == 1  # seen again, recorded once


def test_duplicate_barcodes_within_one_batch_never_raise(engine: Engine) -> None:
    stats = apply(
        engine,
        {"sku": 1, "name": "A", "barcode": MILK},
        {"sku": 2, "name": "B", "barcode": MILK},
        {"sku": 3, "name": "C"},
        {"sku": 3, "barcode": MILK},
        {"sku": 1, "barcode": str(int(MILK))},
    )
    assert stats.products_created == 1
    assert {product_of(engine, s).id for s in (1, 2, 3)} == {product_of(engine, 1).id}


def test_in_store_codes_never_merge_products(engine: Engine) -> None:
    in_store = "2012345000001"  # variable-weight code: the same code can mean different items
    apply(engine, {"sku": 1, "name": "Ham 100g", "barcode": in_store})
    apply(
        engine,
        {
            "company": "woolworths",
            "store_id": "9",
            "sku": "H1",
            "name": "Turkey",
            "barcode": in_store,
        },
    )
    assert product_of(engine, 1).id != product_of(engine, "H1", "woolworths").id
    assert product_of(engine, 1).barcode_scope == "in_store"
    assert count(engine, BarcodeConflict) == 1


def test_prices_are_current_per_store_with_a_history_row_per_change(engine: Engine) -> None:
    apply(engine, {"sku": 1, "price": 2.0}, {"sku": 1, "store_id": "0601", "price": 2.2})
    apply(engine, {"sku": 1, "price": 2.0})  # unchanged: no history row
    apply(engine, {"sku": 1, "price": 1.5, "was_price": 2.0})
    apply(engine, {"sku": 1, "price": 1.6}, {"sku": 1, "price": 1.7})  # two changes in one batch
    with engine.connect() as conn:
        rows = conn.execute(
            select(StorePrice.price, StorePrice.was_price).order_by(StorePrice.price)
        ).all()
        assert [tuple(r) for r in rows] == [(1.7, None), (2.2, None)]
        history = conn.execute(
            select(PriceHistory.previous_price, PriceHistory.price).order_by(PriceHistory.id)
        ).all()
        assert [tuple(h) for h in history] == [(2.0, 1.5), (1.5, 1.6), (1.6, 1.7)]


def test_applying_the_same_lines_twice_changes_nothing(engine: Engine) -> None:
    rows = [
        {"sku": 1, "name": "A", "barcode": MILK, "price": 1.0},
        {"sku": 2, "name": "B", "price": 2.0},
    ]
    apply(engine, *rows)
    again = apply(engine, *rows)
    assert (
        again.products_created,
        again.skus_created,
        again.barcodes_set,
        again.price_changes,
    ) == (0, 0, 0, 0)
    assert count(engine, Product) == 2
