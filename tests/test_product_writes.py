"""Changed products are written set-based on PostgreSQL (one staged ``UPDATE``) and row by
row on SQLite: both store what the rules say, the same as the row-by-row path did, for
hostile lines and for the benchmark's shapes (a rewrite day, names that differ per store,
a product renamed twice in one batch)."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from sqlalchemy import select, text

from colesbarcodes.db import batch_read
from colesbarcodes.db.batch_write import BatchWriter
from colesbarcodes.db.engine import make_engine, migrate
from colesbarcodes.db.models import Base, CompanySku, Product
from colesbarcodes.inbox.claims import Inbox
from loaders.importer import ImportOptions
from loaders.update import LogProgress, run_cycle
from tests.helpers import dump

if TYPE_CHECKING:
    from pathlib import Path

    from sqlalchemy.engine import Engine

SPELLINGS = (str, str.upper, lambda name: name + " Each")


def line(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def listing(store_index: int, *, day: int, names_per_store: bool, skus: int = 60) -> list[bytes]:
    """A store's listing lines in the benchmark's listing shape: day 2 respells every size
    (``500g`` as ``500 g``) and changes every twentieth price."""
    spell = SPELLINGS[store_index % 3] if names_per_store else str
    rows = []
    for n in range(skus):
        size = f"{(100, 250, 500)[n % 3]}g"
        price = 1 + n / 10 + store_index / 10
        if day == 2:
            size = size.replace("g", " g")
            price = round(price * 0.8, 2) if n % 20 == 0 else price
        rows.append(
            line(
                company="coles",
                store_id=f"{584 + store_index:04d}",
                sku=str(1000 + n),
                name=spell(f"Product {n}"),
                brand=f"Brand {n % 7}",
                size=size,
                price=round(price, 2),
                was_price=None,
                unit_price=None,
                barcode=f"9300000{n:05d}" if n % 2 == 0 else None,
                url=None,
                scraped_at=f"2026-11-2{2 + day}T06:00:{store_index:02d}+11:00",
                available=True,
            )
        )
    return rows


def with_check_digit(body: str) -> str:
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return body + str((10 - total % 10) % 10)


def hostile() -> list[bytes]:
    """Lines whose values COPY must escape, that the rules merge or refuse, or that are
    quarantined."""
    gtin = with_check_digit("930000099999")
    return [
        line(store_id="0584", sku=1, name="tab\there", size="new\nline", price=1.5),
        line(store_id="0584", sku=1, name="back\\slash", brand="\\N", price=1.6),
        line(store_id="0584", sku=2, name="Café ☕ — ünïcode", brand="x" * 1000, price=2),
        line(store_id="0584", sku=3, name="held", barcode=gtin, price=3),
        line(store_id="0584", sku=4, name="merged away", price=4),
        line(store_id="0584", sku=4, barcode=gtin, brand="fills the gap"),
        line(store_id="0584", sku=5, name="conflict", barcode=with_check_digit("930000088888")),
        line(store_id="0584", sku=5, barcode=with_check_digit("930000077777")),
        line(store_id="0584", sku=6, name="bad code", barcode="9300000000000"),
        line(store_id="0584", sku=7, name=None, brand=None, size=None, price=None),
        line(store_id="0584", sku=8, name="nul\u0000inside", price=1),
        line(store_id="0584", sku=9, name="too dear", price=1_000_000_000),
        b'{"sku": 10, "name": "broken',
        b"[1, 2, 3]",
        line(store_id="0584", sku=11, name="in-store code", barcode="2012345678903"),
        line(store_id="0584", sku=12, name="in-store code again", barcode="2012345678903"),
    ]


RENAMED_TWICE = [  # one batch: the last value is kept, a missing one erases nothing
    line(store_id="0584", sku=1000, name="First rename", size=None, price=9),
    line(store_id="0585", sku=1000, name="Second rename", brand="Renamed brand", price=9),
    line(store_id="0586", sku=1000, size=None, brand=None, price=9),
    line(store_id="0584", sku=1001, name="Away"),
    line(store_id="0585", sku=1001, name="Product 1"),  # back to the stored name
    # what COPY's text format escapes, in a product that is updated
    line(store_id="0584", sku=1002, name="tab\there\nnew line", brand="\\N", size="☕ \\ 1"),
]


def write_files(folder: Path) -> dict[str, list[Path]]:
    """Two days of files: day 1 (listing, names the same everywhere) and day 2 (a rewrite
    day, names per store, hostile lines, a product renamed twice in one batch)."""
    folder.mkdir()
    days: dict[str, list[Path]] = {"day1": [], "day2": []}
    files = {
        ("day1", "coles_listing_1.jsonl"): [
            row for s in range(3) for row in listing(s, day=1, names_per_store=False)
        ],
        ("day2", "coles_listing_2.jsonl"): [
            row for s in range(3) for row in listing(s, day=2, names_per_store=False)
        ],
        ("day2", "coles_names_per_store.jsonl"): [
            row for s in range(4) for row in listing(s, day=2, names_per_store=True)
        ],
        ("day2", "coles_store-0584_hostile.jsonl"): hostile(),
        ("day2", "coles_renamed_twice.jsonl"): RENAMED_TWICE,
    }
    for n, ((day, name), rows) in enumerate(files.items()):
        path = folder / day / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"".join(row + b"\n" for row in rows))
        os.utime(path, (1_700_000_000 + n, 1_700_000_000 + n))
        days[day].append(path)
    return days


def import_days(
    engine: Engine, days: dict[str, list[Path]], root: Path, batch_size: int
) -> dict[str, Any]:
    """Import the days, a cycle each, through fresh inboxes; the database and the
    quarantine files after it."""
    quarantined: list[tuple[str, int, str]] = []
    for day, paths in days.items():
        inbox = Inbox(root / day)
        inbox.ensure()
        for path in paths:
            target = inbox.root / path.name
            target.write_bytes(path.read_bytes())
            os.utime(target, (path.stat().st_mtime, path.stat().st_mtime))
        run_cycle(engine, inbox, ImportOptions(batch_size=batch_size), LogProgress(every=1e9))
        for quarantine in sorted(inbox.quarantine.glob("*.jsonl")):
            for record in map(json.loads, quarantine.read_text().splitlines()):
                quarantined.append((record["file"], record["line"], record["reason"]))
    return {"database": dump(engine), "quarantine": sorted(quarantined)}


def empty(url: str) -> None:
    engine = make_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.mark.parametrize("batch_size", [7, 50, 1000])
def test_the_set_based_product_write_stores_what_the_row_by_row_one_did(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch_size: int
) -> None:
    """On SQLite, on PostgreSQL row by row (the path before), on PostgreSQL set-based, and
    set-based with each batch reading its company's whole catalogue: the same products,
    SKUs, prices, history, merges, conflicts and quarantine."""
    days = write_files(tmp_path / "files")
    results = []
    sqlite = make_engine(f"sqlite:///{tmp_path / 'rows.sqlite3'}")
    migrate(sqlite)
    results.append(import_days(sqlite, days, tmp_path / "sqlite", batch_size))
    sqlite.dispose()
    for set_based in (False, True):
        monkeypatch.setattr(BatchWriter, "products_set_based", set_based)
        empty(postgres_url)
        engine = make_engine(postgres_url)
        results.append(import_days(engine, days, tmp_path / f"pg-{set_based}", batch_size))
        engine.dispose()
    monkeypatch.setattr(batch_read, "CATALOGUE_READ_FROM", 1)
    monkeypatch.setattr(batch_read, "CATALOGUE_SHARE", 10**9)
    empty(postgres_url)
    engine = make_engine(postgres_url)
    results.append(import_days(engine, days, tmp_path / "pg-catalogue", batch_size))
    engine.dispose()
    assert results[0]["quarantine"], "the hostile file has lines to quarantine"
    assert results[1] == results[0]
    assert results[2] == results[1]
    assert results[3] == results[2]


def product_of(engine: Engine, sku: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(
            select(Product.name, Product.brand, Product.size, Product.updated_at)
            .join(CompanySku, CompanySku.product_id == Product.id)
            .where(CompanySku.sku == sku)
        ).one()


def test_a_product_named_several_times_in_a_batch_keeps_the_last_value_given(
    engine: Engine, tmp_path: Path
) -> None:
    """A later line's value replaces an earlier one, a missing value never erases one, and
    a product named back to its stored name within the batch is not rewritten."""
    days = write_files(tmp_path / "files")
    import_days(engine, {"day1": days["day1"]}, tmp_path / "one", 1000)
    before = product_of(engine, "1001")
    renamed = [p for p in days["day2"] if p.name == "coles_renamed_twice.jsonl"]
    import_days(engine, {"day2": renamed}, tmp_path / "two", 1000)
    name, brand, size, _ = product_of(engine, "1000")
    assert (name, brand, size) == ("Second rename", "Renamed brand", "100g")
    assert product_of(engine, "1001") == before  # not rewritten: updated_at as it was
    # tabs, line breaks and backslashes reach the row as they were sent
    assert product_of(engine, "1002")[:3] == ("tab\there\nnew line", "\\N", "☕ \\ 1")


def test_a_batch_handed_over_whole_reads_its_catalogue_and_prices_not_key_by_key(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lines parsed while the batch before them was stored come to the reader all at once:
    it reads the company's catalogue and the store's prices in one go each, instead of
    looking the first few thousand SKUs and prices up one by one until it has named enough
    of them for those reads."""
    from colesbarcodes.db.catalog import BatchReader, apply_lines
    from colesbarcodes.db.engine import session_factory
    from colesbarcodes.inbox.lines import parse_object

    skus = batch_read.CATALOGUE_READ_FROM + 500

    def lines(store: str) -> list[Any]:
        return [
            (n, parse_object({"sku": 1000 + n, "store_id": store, "name": f"P{n}", "price": 2.5}))
            for n in range(skus)
        ]

    engine = make_engine(postgres_url)
    with session_factory(engine).begin() as session:
        apply_lines(session, lines("0584"), source="day1.jsonl")
    sent: list[str] = []
    execute = psycopg.Cursor.execute

    def recording(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(str(query))
        return execute(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", recording)
    batch = lines("0585")
    with session_factory(engine).begin() as session:
        reader = BatchReader(session)
        with reader:
            reader.read(batch)
        stats = apply_lines(session, batch, source="day2.jsonl", reader=reader)
    engine.dispose()
    reads = {
        batch_read._PG_CATALOGUE: "catalogue",
        batch_read._PG_STORE_PRICES: "store prices",
        batch_read._PG_SKU_STATE: "SKU by SKU",
        batch_read._PG_PRODUCT_STATE: "product by product",
        batch_read._PG_PRICE_STATE: "price by price",
    }
    asked = [reads[q] for q in sent if q in reads]
    assert asked == ["catalogue", "store prices"]
    assert (stats.products_created, stats.skus_created) == (0, 0)
