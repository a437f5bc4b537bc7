"""How an import writes ``store_prices``: only what changed, into pages with room to change.

A day's import observes every (store, SKU) pair again. A pair whose stored row would come
out the same is not written at all; the others are updated in place where PostgreSQL can
(docs/product-update.md, "Writing prices").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select, text

from colesbarcodes.db import batch_read
from colesbarcodes.db.engine import make_engine, migrate
from colesbarcodes.db.models import STORE_PRICES_FILLFACTOR, PriceHistory, StorePrice
from colesbarcodes.inbox.claims import Inbox
from loaders.importer import ImportOptions
from loaders.update import LogProgress, run_cycle
from tests.helpers import canonical_rows, write_jsonl

if TYPE_CHECKING:
    from pathlib import Path

    from sqlalchemy.engine import Engine


@pytest.fixture(autouse=True, params=["per SKU", "by store", "by catalogue"])
def stored_price_reads(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """A batch reads the stored prices it compares with per SKU, or all of a store's at once
    when it names many of the store's SKUs (PostgreSQL, ``STORE_PRICES_READ_FROM``), or the
    products of its SKUs with the company's whole catalogue and the prices per SKU
    (``CATALOGUE_READ_FROM``): every test here runs each way."""
    if request.param == "by store":
        monkeypatch.setattr(batch_read, "STORE_PRICES_READ_FROM", 1)
    if request.param == "by catalogue":
        monkeypatch.setattr(batch_read, "CATALOGUE_READ_FROM", 1)
        monkeypatch.setattr(batch_read, "CATALOGUE_SHARE", 10**9)
    return str(request.param)


def _import(engine: Engine, inbox: Inbox, name: str, rows: list[dict[str, object]]) -> None:
    write_jsonl(inbox.root / name, rows)
    report = run_cycle(engine, inbox, ImportOptions(batch_size=25), LogProgress(), post=False)
    assert report.lines == len(rows)


def _row_versions(engine: Engine) -> dict[tuple[int, int], str]:
    """Each price row's transaction id of its current version: a write changes it."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT store_pk, sku_pk, xmin::text FROM store_prices"))
        return {(store_pk, sku_pk): version for store_pk, sku_pk, version in rows}


def test_store_prices_pages_leave_room_for_in_place_updates_on_postgresql(
    postgres_url: str,
) -> None:
    engine = make_engine(postgres_url)
    migrate(engine)
    with engine.connect() as conn:
        options = conn.scalar(
            text("SELECT reloptions FROM pg_class WHERE oid = 'store_prices'::regclass")
        )
    engine.dispose()
    assert options == [f"fillfactor={STORE_PRICES_FILLFACTOR}"]


def test_the_same_file_imported_again_rewrites_no_price_row_on_postgresql(
    postgres_url: str, tmp_path: Path
) -> None:
    engine = make_engine(postgres_url)
    migrate(engine)
    inbox = Inbox(tmp_path / "product_inbox")
    inbox.ensure()
    rows = canonical_rows("0584", range(1, 101)) + canonical_rows("0601", range(1, 101))
    _import(engine, inbox, "day1.jsonl", rows)
    before = _row_versions(engine)
    _import(engine, inbox, "day1-again.jsonl", rows)
    assert _row_versions(engine) == before
    # a later observation of the same prices is written (last_seen moves on)
    later = [{**row, "scraped_at": "2026-11-24T06:00:00Z"} for row in rows[:10]]
    _import(engine, inbox, "day2.jsonl", later)
    after = _row_versions(engine)
    changed = {key for key in before if after[key] != before[key]}
    assert len(changed) == 10
    engine.dispose()


def test_availability_and_url_seen_at_the_same_time_are_still_stored(
    engine: Engine, tmp_path: Path
) -> None:
    inbox = Inbox(tmp_path / "product_inbox")
    inbox.ensure()
    rows = canonical_rows("0584", range(1, 41))
    _import(engine, inbox, "first.jsonl", rows)
    corrected = [
        {**row, "available": False, "url": f"https://example.test/{row['sku']}"} for row in rows[:5]
    ] + [{**row, "price": 99.5} for row in rows[5:8]]
    _import(engine, inbox, "corrected.jsonl", corrected + rows[8:])
    with engine.connect() as conn:
        stored = conn.execute(
            select(StorePrice.available, StorePrice.url, StorePrice.price).order_by(
                StorePrice.sku_pk
            )
        ).all()
    assert [tuple(row) for row in stored[:5]] == [
        (False, f"https://example.test/{sku}", 1.0 + sku % 7) for sku in range(1, 6)
    ]
    assert [row.price for row in stored[5:8]] == [99.5, 99.5, 99.5]
    assert [(row.available, row.url) for row in stored[8:]] == [(None, None)] * 32


def test_a_next_day_records_each_changed_price_once_and_moves_every_row_on(
    engine: Engine, tmp_path: Path
) -> None:
    inbox = Inbox(tmp_path / "product_inbox")
    inbox.ensure()
    day1 = canonical_rows("0584", range(1, 61)) + canonical_rows("0601", range(1, 61))
    _import(engine, inbox, "day1.jsonl", day1)
    day2 = [
        {**row, "scraped_at": "2026-11-24T06:00:00Z"}
        for store in ("0584", "0601")
        for row in canonical_rows(store, range(1, 11), price=2.0)
        + canonical_rows(store, range(11, 61))
    ]
    _import(engine, inbox, "day2.jsonl", day2)
    with engine.connect() as conn:
        history = conn.execute(
            select(PriceHistory.previous_price, PriceHistory.price).order_by(PriceHistory.id)
        ).all()
        seen = set(conn.scalars(select(StorePrice.last_seen)))
        prices = sorted(p for p in conn.scalars(select(StorePrice.price)) if p is not None)
    assert sorted((a, b) for a, b in history) == sorted(
        (1.0 + sku % 7, 2.0 + sku % 7) for sku in range(1, 11) for _store in range(2)
    )
    assert len(seen) == 1  # every row moved on to the later day
    assert prices == sorted(
        (2.0 if sku <= 10 else 1.0) + sku % 7 for sku in range(1, 61) for _store in range(2)
    )
