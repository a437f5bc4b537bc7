"""Post-processing: reconciliation of older data and product groups, both idempotent."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, insert, select, update

from colesbarcodes.db.diagnostics import company_skus
from colesbarcodes.db.engine import session_factory
from colesbarcodes.db.maintenance import group_key, maintain_groups, reconcile
from colesbarcodes.db.models import (
    CompanySku,
    Product,
    ProductGroup,
    ProductMerge,
    Store,
    StorePrice,
)
from tests.helpers import dump, run_loader

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

MILK = "9300633600082"


def legacy_product(
    engine: Engine, barcode: str | None, *skus: tuple[str, str], name: str = "Legacy"
) -> int:
    """Rows as an older tool wrote them: barcodes and SKUs not in canonical form."""
    with engine.begin() as conn:
        product_id = conn.execute(
            insert(Product).values(name=name, barcode=barcode).returning(Product.id)
        ).scalar_one()
        for company, sku in skus:
            conn.execute(insert(CompanySku).values(company=company, sku=sku, product_id=product_id))
    return product_id


def test_reconcile_merges_products_whose_barcodes_are_one_gtin(engine: Engine) -> None:
    with_barcode = legacy_product(engine, MILK, ("coles", "1"))
    padded = legacy_product(
        engine, "0" + MILK, ("coles", "2")
    )  # same GTIN, older non-canonical form
    with session_factory(engine).begin() as session:
        stats = reconcile(session)
    assert stats.merges == 1
    with session_factory(engine)() as session:
        survivor = session.scalars(select(Product)).one()
        assert survivor.barcode == MILK
        assert company_skus(session, survivor.id) == {"coles": [1, 2]}
        merge = session.scalars(select(ProductMerge)).one()
        assert {merge.survivor_id, merge.merged_id} == {with_barcode, padded}


def test_reconcile_merges_products_that_share_a_sku_left_by_older_data(engine: Engine) -> None:
    barcoded = legacy_product(engine, MILK, ("coles", "0123"), name="With barcode")
    plain = legacy_product(engine, None, ("coles", "123"), name="Without")
    with engine.begin() as conn:
        store = conn.execute(
            insert(Store).values(company="coles", store_id="0584").returning(Store.id)
        ).scalar_one()
        sku_pks = dict(conn.execute(select(CompanySku.sku, CompanySku.id)).all())
        conn.execute(
            insert(StorePrice),
            [
                {
                    "store_pk": store,
                    "sku_pk": sku_pks["0123"],
                    "price": 1.0,
                    "last_seen": datetime(2026, 1, 1, tzinfo=UTC),
                },
                {
                    "store_pk": store,
                    "sku_pk": sku_pks["123"],
                    "price": 2.0,
                    "last_seen": datetime(2026, 2, 1, tzinfo=UTC),
                },
            ],
        )
    with session_factory(engine).begin() as session:
        stats = reconcile(session)
    assert (stats.skus_normalized, stats.merges) == (1, 1)
    with session_factory(engine)() as session:
        product = session.scalars(select(Product)).one()
        assert product.id == barcoded != plain  # the row with a barcode is preferred
        assert company_skus(session, product.id) == {"coles": [123]}
        assert session.scalars(select(StorePrice.price)).all() == [2.0]  # the newest price wins


def test_reconcile_twice_changes_nothing_the_second_time(engine: Engine) -> None:
    legacy_product(engine, MILK, ("coles", "1"))
    legacy_product(engine, "0" + MILK, ("coles", " 2"))
    with session_factory(engine).begin() as session:
        reconcile(session)
    before = dump(engine)
    with session_factory(engine).begin() as session:
        again = reconcile(session)
    assert (again.merges, again.skus_normalized, again.barcodes_normalized) == (0, 0, 0)
    assert dump(engine) == before


def test_groups_link_look_alike_products_of_different_companies_and_are_kept_current(
    engine: Engine,
) -> None:
    coles = legacy_product(engine, None, ("coles", "1"), name="Full Cream Milk")
    woolies = legacy_product(engine, None, ("woolworths", "W1"), name="full cream  milk")
    legacy_product(engine, None, ("coles", "2"), name="Bread")
    with engine.begin() as conn:
        conn.execute(
            update(Product)
            .values(brand="Dairy Farmers", size="2 L")
            .where(Product.id.in_([coles, woolies]))
        )
    with session_factory(engine).begin() as session:
        first = maintain_groups(session)
    assert (first.groups, first.created, first.members_added) == (1, 1, 2)
    with session_factory(engine).begin() as session:
        again = maintain_groups(session)
    assert (again.created, again.removed, again.members_added, again.members_removed) == (
        0,
        0,
        0,
        0,
    )
    # a third look-alike joins; then a contradiction (two different global barcodes) removes the group
    aldi = legacy_product(engine, "9300633600099", ("aldi", "A1"), name="Full-Cream Milk")
    with engine.begin() as conn:
        conn.execute(
            update(Product).values(brand="Dairy Farmers", size="2l").where(Product.id == aldi)
        )
    with session_factory(engine).begin() as session:
        assert maintain_groups(session).members_added == 1
    with engine.begin() as conn:
        conn.execute(
            update(Product).values(barcode=MILK, barcode_scope="global").where(Product.id == coles)
        )
    with session_factory(engine).begin() as session:
        assert maintain_groups(session).removed == 1
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(ProductGroup)) == 0


def test_a_group_is_removed_once_the_database_holds_one_company_again(engine: Engine) -> None:
    legacy_product(engine, None, ("coles", "1"), name="Full Cream Milk")
    legacy_product(engine, None, ("woolworths", "W1"), name="Full Cream Milk")
    with session_factory(engine).begin() as session:
        assert maintain_groups(session).created == 1
    with engine.begin() as conn:
        conn.execute(delete(CompanySku).where(CompanySku.company == "woolworths"))
    with session_factory(engine).begin() as session:
        stats = maintain_groups(session)
    assert (stats.groups, stats.removed) == (0, 1)
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(ProductGroup)) == 0


def test_group_keys_ignore_case_spacing_punctuation_and_accents() -> None:
    assert group_key("Café Co", "Full-Cream Milk", "2 L") == group_key(
        "cafe co", "full cream milk", "2l"
    )
    assert group_key("X", None, "1kg") is None


def test_post_process_only_runs_without_importing(engine: Engine, tmp_path: object) -> None:
    legacy_product(engine, MILK, ("coles", "1"))
    legacy_product(engine, "0" + MILK, ("coles", "2"))
    url = engine.url.render_as_string(hide_password=False)
    result = run_loader(url, "update", "--post-process-only")
    assert result.exit_code == 0, result.output
    assert "post-processing: 1 merges" in result.output
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Product)) == 1
