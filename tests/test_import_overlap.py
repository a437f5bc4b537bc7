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
from tests.helpers import canonical_rows, dump, write_jsonl

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


def test_a_file_claimed_ahead_of_a_cycle_that_fails_is_imported_whole_by_the_next_run(
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
    assert _in_processing(inbox) == ["coles_store-0601.jsonl"]  # claimed ahead, let go

    report = run_cycle(slow_engine, inbox, ImportOptions(batch_size=15), LogProgress())

    assert [(f.name, f.resumed_from, f.imported) for f in report.files] == [
        ("coles_store-0601.jsonl", 0, 40),
        ("coles_store-0720.jsonl", 0, 40),
    ]
    assert _in_processing(inbox) == []
    with slow_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM store_prices")).scalar_one() == 120
