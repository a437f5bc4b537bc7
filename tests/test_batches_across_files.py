"""A batch goes on with the next file when a file ends before the batch is full
(docs/product-update.md, "Batch size"), so a day of small files pays a batch's fixed work
once per batch, not once per file.

What it may never change is the outcome: the database of the same files imported one per
cycle (each its own batches), with each line's merges and conflicts named by its own file,
each file's lines without ``scraped_at`` seen at its own time, each file's record and
quarantine its own; and a stop resumes each file after its committed lines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select
from stdnum import ean

from colesbarcodes.db.engine import make_engine, migrate
from colesbarcodes.db.models import ImportedFile
from colesbarcodes.inbox.claims import Inbox
from loaders.importer import ImportOptions
from loaders.update import LogProgress, run_cycle
from tests.helpers import BatchLines, canonical_rows, dump, write_jsonl

if TYPE_CHECKING:
    from pathlib import Path

    from sqlalchemy.engine import Engine

_BATCH = ImportOptions(batch_size=100)


def _barcode(number: int) -> str:
    body = f"93{number:010d}"
    return body + ean.calc_check_digit(body)


def _day_of_small_files(root: Path) -> list[str]:
    """Three stores' files of 61 lines each (with a bad one), their products named
    differently at each store, a third of the lines without ``scraped_at`` (each file
    written an hour after the one before); the second file merges two products, the third
    offers a product a barcode it has not. Returns their names."""
    files: list[str] = []
    for number, store in enumerate(["0584", "0601", "0720"]):
        rows: list[object] = []
        for row in canonical_rows(store, range(1, 60), price=1.0 + number):
            row["name"] = f"{row['name']} at {store}"
            if int(str(row["sku"])) % 3 == 0:
                del row["scraped_at"]  # seen when its file was written
            rows.append(row)
        rows.insert(20, '{"sku": null}')  # quarantined
        if store == "0601":  # SKU 1 takes SKU 2's barcode: one trade item, a merge
            rows.append({"sku": 1, "store_id": store, "barcode": _barcode(2)})
        if store == "0720":  # SKU 4 holds another barcode: a conflict
            rows.append({"sku": 4, "store_id": store, "barcode": _barcode(7004)})
        if store == "0584":
            rows.append({"sku": 61, "store_id": store, "name": "Product 61"})
        name = f"coles_store-{store}.jsonl"
        write_jsonl(root / name, rows, mtime=1_700_000_000 + 3600 * number)
        files.append(name)
    return files


@pytest.fixture
def one_file_a_cycle(tmp_path: Path) -> Engine:
    """The day imported one file a cycle (no batch spans files), on SQLite."""
    engine = make_engine(f"sqlite:///{tmp_path / 'one_file_a_cycle.sqlite3'}")
    migrate(engine)
    written, day = tmp_path / "written", Inbox(tmp_path / "day")
    written.mkdir()
    day.ensure()
    for name in _day_of_small_files(written):
        (written / name).rename(day.root / name)  # its modification time kept
        report = run_cycle(engine, day, _BATCH, LogProgress(), post=False)
        assert [f.name for f in report.files] == [name]
    return engine


def test_a_day_of_small_files_is_imported_in_batches_that_span_them(
    engine: Engine, inbox: Inbox, one_file_a_cycle: Engine
) -> None:
    _day_of_small_files(inbox.root)
    batches = BatchLines()

    report = run_cycle(engine, inbox, _BATCH, batches, post=False)

    # 183 lines: the first file and 39 lines of the second, then the rest
    assert batches.batches == [100, 83]
    assert batches.done_after == {
        "coles_store-0584.jsonl": 1,
        "coles_store-0601.jsonl": 2,
        "coles_store-0720.jsonl": 2,
    }
    assert [(f.name, f.lines, f.imported, f.quarantined) for f in report.files] == [
        ("coles_store-0584.jsonl", 61, 60, 1),
        ("coles_store-0601.jsonl", 61, 60, 1),
        ("coles_store-0720.jsonl", 61, 60, 1),
    ]
    assert dump(engine) == dump(one_file_a_cycle)
    for file in report.files:
        assert file.quarantine_file is not None
        assert file.quarantine_file.read_text().count("\n") == 1


def test_a_batch_counts_its_changes_once_in_the_cycle(engine: Engine, inbox: Inbox) -> None:
    _day_of_small_files(inbox.root)

    report = run_cycle(engine, inbox, _BATCH, LogProgress(), post=False)

    stats = report.stats()
    assert (stats.lines, stats.merges, stats.conflicts) == (180, 1, 1)


def test_a_stopped_cycle_resumes_each_file_after_its_committed_lines(
    engine: Engine, inbox: Inbox, one_file_a_cycle: Engine
) -> None:
    _day_of_small_files(inbox.root)

    class StopAfterTheFirstBatch(BatchLines):
        def advance(self, lines: int) -> None:
            super().advance(lines)
            raise KeyboardInterrupt  # stopped once a batch is committed

    with pytest.raises(KeyboardInterrupt):
        run_cycle(engine, inbox, _BATCH, StopAfterTheFirstBatch())
    with engine.connect() as conn:
        committed = dict(
            conn.execute(select(ImportedFile.original_name, ImportedFile.lines_done)).all()
        )
    assert committed == {"coles_store-0584.jsonl": 61, "coles_store-0601.jsonl": 39}

    batches = BatchLines()
    report = run_cycle(engine, inbox, _BATCH, batches, post=False)

    # each resumed file begins a batch of its own (where it resumes is in its record): the
    # first has nothing left but its end to record. (The third file went on with the
    # second's 22 lines: in one batch when it was still in the inbox, in its own when the
    # stopped run had claimed it ahead, as PostgreSQL's side work does.)
    assert batches.batches[0] == 0
    assert batches.batches[1:] in ([83], [22, 61])
    assert [(f.name, f.resumed_from, f.lines) for f in report.files] == [
        ("coles_store-0584.jsonl", 61, 0),
        ("coles_store-0601.jsonl", 39, 22),
        ("coles_store-0720.jsonl", 0, 61),
    ]
    assert dump(engine) == dump(one_file_a_cycle)
    assert not list(inbox.processing.iterdir())
