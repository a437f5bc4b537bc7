"""While PostgreSQL stores a batch, the loader parses what comes next (docs/product-update.md,
"The loader and the database at work together").

A trigger that sleeps a little for every price row keeps the server busy after each COPY,
as the indexes of a large table do, so the side work runs on every batch here; what it may
never change is the outcome: the same database, every file imported once, and a file
claimed ahead of its turn handled like any other claim.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from sqlalchemy import text

from colesbarcodes.db.engine import make_engine, migrate
from colesbarcodes.inbox.claims import Inbox
from loaders.importer import FileReport, ImportOptions
from loaders.update import LogProgress, run_cycle
from tests.helpers import BatchLines, canonical_rows, dump, write_jsonl

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from sqlalchemy.engine import Engine

_SLOW_PRICES = """
    CREATE FUNCTION slow_price() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN PERFORM pg_sleep(0.002); RETURN NEW; END $$;
    CREATE TRIGGER slow_price BEFORE INSERT ON store_prices
        FOR EACH ROW EXECUTE FUNCTION slow_price();
"""


@pytest.fixture
def slow_engine(postgres_url: str) -> Iterator[Engine]:
    """A PostgreSQL database whose price inserts take 2 ms a row."""
    engine = make_engine(postgres_url)
    migrate(engine)
    with engine.begin() as conn:
        conn.execute(text(_SLOW_PRICES))
    yield engine
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER slow_price ON store_prices; DROP FUNCTION slow_price()"))
    engine.dispose()


def _three_store_files(inbox: Inbox) -> None:
    for number, store in enumerate(["0584", "0601", "0720"]):
        rows = canonical_rows(store, range(1, 41))
        write_jsonl(inbox.root / f"coles_store-{store}.jsonl", rows, mtime=1_700_000_000 + number)


def _in_processing(inbox: Inbox) -> list[str]:
    return sorted(path.name.split("--", 1)[1] for path in inbox.processing.glob("*--*"))


def test_the_next_file_is_claimed_while_the_database_stores_the_last_batch_of_a_file(
    slow_engine: Engine, inbox: Inbox
) -> None:
    _three_store_files(inbox)
    claimed_when_done: dict[str, list[str]] = {}

    def note_claims(report: FileReport) -> None:
        claimed_when_done[report.name] = _in_processing(inbox)

    report = run_cycle(
        slow_engine, inbox, ImportOptions(batch_size=15), LogProgress(), on_file=note_claims
    )

    assert [f.name for f in report.files] == [
        "coles_store-0584.jsonl",
        "coles_store-0601.jsonl",
        "coles_store-0720.jsonl",
    ]
    assert [f.imported for f in report.files] == [40, 40, 40]
    # when a file is done, the next one is in processing/ already: claimed (and started)
    # while its predecessor's last batch was being stored
    assert claimed_when_done == {
        "coles_store-0584.jsonl": ["coles_store-0601.jsonl"],
        "coles_store-0601.jsonl": ["coles_store-0720.jsonl"],
        "coles_store-0720.jsonl": [],
    }


def test_parsing_ahead_leaves_the_database_as_an_import_without_it(
    slow_engine: Engine, inbox: Inbox, tmp_path: Path
) -> None:
    _three_store_files(inbox)
    run_cycle(slow_engine, inbox, ImportOptions(batch_size=15), LogProgress(), post=False)

    plain = make_engine(f"sqlite:///{tmp_path / 'plain.sqlite3'}")  # no COPY: no side work
    migrate(plain)
    again = Inbox(tmp_path / "again")
    again.ensure()
    _three_store_files(again)
    run_cycle(plain, again, ImportOptions(batch_size=15), LogProgress(), post=False)

    assert dump(slow_engine) == dump(plain)
    plain.dispose()


def test_a_file_begun_in_a_cycle_that_fails_is_resumed_after_its_committed_lines(
    slow_engine: Engine, inbox: Inbox
) -> None:
    _three_store_files(inbox)

    def fail_after_the_first_file(report: FileReport) -> None:
        raise RuntimeError("the cycle stops here")

    with pytest.raises(RuntimeError, match="the cycle stops here"):
        run_cycle(
            slow_engine,
            inbox,
            ImportOptions(batch_size=15),
            LogProgress(),
            on_file=fail_after_the_first_file,
        )
    # the batch that ended the first file (its last 10 lines) began the second (5 lines):
    # that file was let go, with those lines committed
    assert _in_processing(inbox) == ["coles_store-0601.jsonl"]

    report = run_cycle(slow_engine, inbox, ImportOptions(batch_size=15), LogProgress())

    assert [(f.name, f.resumed_from, f.lines, f.imported) for f in report.files] == [
        ("coles_store-0601.jsonl", 5, 35, 40),
        ("coles_store-0720.jsonl", 0, 40, 40),
    ]
    assert _in_processing(inbox) == []
    with slow_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM store_prices")).scalar_one() == 120


def _listing_file(inbox: Inbox, name: str, skus: range, mtime: float) -> None:
    """One file of three stores' lines, store after store (a listing file)."""
    rows = [row for store in ("0584", "0601", "0720") for row in canonical_rows(store, skus)]
    write_jsonl(inbox.root / name, rows, mtime=mtime)


_SLOW_PRICE_STATEMENTS = """
    CREATE FUNCTION slow_prices() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN PERFORM pg_sleep(0.2); RETURN NULL; END $$;
    CREATE TRIGGER slow_prices AFTER INSERT ON store_prices
        FOR EACH STATEMENT EXECUTE FUNCTION slow_prices();
"""


def test_a_cycle_begins_a_file_larger_than_a_batch_with_a_quarter_batch(
    postgres_url: str, inbox: Inbox
) -> None:
    _listing_file(inbox, "coles_listing_a.jsonl", range(1, 3000), mtime=1_700_000_000)
    _listing_file(inbox, "coles_listing_b.jsonl", range(1, 3000), mtime=1_700_000_001)
    engine = make_engine(postgres_url)
    migrate(engine)
    with engine.begin() as conn:  # each batch's prices take the database 0.2 s to store
        conn.execute(text(_SLOW_PRICE_STATEMENTS))
    batches = BatchLines()

    try:
        run_cycle(engine, inbox, ImportOptions(batch_size=4000), batches, post=False)
    finally:
        with engine.begin() as conn:
            conn.execute(text("DROP TRIGGER slow_prices ON store_prices"))
            conn.execute(text("DROP FUNCTION slow_prices()"))

    # nothing to overlap the first batch's parse with: a quarter of a batch, which the
    # database stores while the next one is parsed; no more batches than full ones. The
    # others were parsed while the database stored the one before: full batches, the
    # third ending the first file (3,997 lines) and beginning the second (3)
    assert batches.batches == [1000, 4000, 4000, 4000, 4000, 994]
    assert batches.done_after == {"coles_listing_a.jsonl": 3, "coles_listing_b.jsonl": 6}
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM store_prices")).scalar_one() == 8997
    engine.dispose()


def test_a_cycle_of_small_files_begins_with_a_quarter_batch(
    postgres_url: str, inbox: Inbox
) -> None:
    for number, store in enumerate(["0584", "0601", "0720"]):
        rows = canonical_rows(store, range(1, 2901))
        write_jsonl(inbox.root / f"coles_store-{store}.jsonl", rows, mtime=1_700_000_000 + number)
    engine = make_engine(postgres_url)
    migrate(engine)
    batches = BatchLines()

    run_cycle(engine, inbox, ImportOptions(batch_size=4000), batches, post=False)

    # the first file (2,900 lines) is smaller than a batch, but the batch would go on with
    # the files after it: a quarter first, then full batches that span the files
    assert batches.batches == [1000, 4000, 3700]
    assert batches.done_after == {
        "coles_store-0584.jsonl": 2,
        "coles_store-0601.jsonl": 3,
        "coles_store-0720.jsonl": 3,
    }
    engine.dispose()


def test_a_file_no_larger_than_a_batch_stays_one_batch(postgres_url: str, inbox: Inbox) -> None:
    _listing_file(inbox, "coles_listing_a.jsonl", range(1, 1001), mtime=1_700_000_000)
    engine = make_engine(postgres_url)
    migrate(engine)
    batches = BatchLines()

    run_cycle(engine, inbox, ImportOptions(batch_size=4000), batches, post=False)

    # split, its second batch would read the catalogue again for 2,000 lines
    assert batches.batches == [3000]
    engine.dispose()


def test_a_file_resumed_after_a_batch_begins_again_with_a_quarter_batch(
    postgres_url: str, inbox: Inbox
) -> None:
    _listing_file(inbox, "coles_listing_a.jsonl", range(1, 4001), mtime=1_700_000_000)
    engine = make_engine(postgres_url)
    migrate(engine)

    class StopAfterTheFirstBatch(BatchLines):
        def advance(self, lines: int) -> None:
            super().advance(lines)
            raise KeyboardInterrupt  # the loader is stopped once a batch is committed

    with pytest.raises(KeyboardInterrupt):
        run_cycle(engine, inbox, ImportOptions(batch_size=4000), StopAfterTheFirstBatch())
    batches = BatchLines()
    run_cycle(engine, inbox, ImportOptions(batch_size=4000), batches, post=False)

    # 12,000 lines: 1,000 before the stop; of the 11,000 left, a quarter batch first again
    assert batches.batches == [1000, 4000, 4000, 2000]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM store_prices")).scalar_one() == 12000
    engine.dispose()
