"""The run ledger of imports: every `coles-loader update` cycle that imported files (or
failed) is an ``import_runs`` row, shown by `coles-loader runs --imports`."""

from __future__ import annotations

import json
import socket
from datetime import datetime
from typing import TYPE_CHECKING

from tests.helpers import run_loader, write_jsonl

if TYPE_CHECKING:
    import pytest
    from sqlalchemy.engine import Engine

    from colesbarcodes.inbox.claims import Inbox


def url_of(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def update(engine: Engine, inbox: Inbox) -> None:
    result = run_loader(
        url_of(engine),
        "update",
        "--products",
        "--once",
        "--no-progress",
        "--inbox",
        str(inbox.root),
    )
    assert result.exit_code == 0, result.output


def test_an_import_cycle_records_its_node_files_and_counts(engine: Engine, inbox: Inbox) -> None:
    write_jsonl(
        inbox.root / "coles_store-0584_a.jsonl",
        [{"sku": 1, "barcode": "9300633600082", "price": 1.5}, {"sku": 2}, "not json"],
    )
    write_jsonl(inbox.root / "coles_store-0601_b.jsonl", [{"sku": 1, "price": 1.7}])
    update(engine, inbox)
    update(engine, inbox)  # an empty inbox: nothing to record

    runs = json.loads(run_loader(url_of(engine), "runs", "--imports", "--json").stdout)
    (run,) = runs
    assert run["node"] == socket.gethostname()
    assert run["inbox"] == str(inbox.root)
    assert run["finish_reason"] == "finished"
    assert datetime.fromisoformat(run["started_at"]) <= datetime.fromisoformat(run["finished_at"])
    assert [(f["name"], f["lines"], f["quarantined"]) for f in run["files"]] == [
        ("coles_store-0584_a.jsonl", 3, 1),
        ("coles_store-0601_b.jsonl", 1, 0),
    ]
    counts = run["counts"]
    assert (counts["files"], counts["lines"], counts["quarantined"]) == (2, 4, 1)
    assert (counts["products_created"], counts["barcodes_set"]) == (2, 1)
    assert (counts["prices_written"], counts["price_changes"]) == (2, 0)

    table = run_loader(url_of(engine), "runs", "--imports").output
    assert "Import runs" in table
    assert socket.gethostname() in table
    # The crawl ledger is still what `runs` shows by default.
    assert json.loads(run_loader(url_of(engine), "runs", "--json").stdout) == []


def test_a_failed_cycle_is_recorded_as_failed(
    engine: Engine, inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    import loaders.update

    def broken_cycle(*_args: object, **_kwargs: object) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(loaders.update, "run_cycle", broken_cycle)
    write_jsonl(inbox.root / "a.jsonl", [{"sku": 1}])
    result = run_loader(
        url_of(engine),
        "update",
        "--products",
        "--pause",
        "0",
        "--max-failures",
        "2",
        "--no-progress",
        "--inbox",
        str(inbox.root),
    )
    assert result.exit_code == 1
    runs = json.loads(run_loader(url_of(engine), "runs", "--imports", "--json").stdout)
    assert [r["finish_reason"] for r in runs] == ["failed: disk on fire"] * 2
    assert all(r["files"] == [] for r in runs)
