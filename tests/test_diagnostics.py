"""Diagnostic commands: each prints a table, or JSON with --json for scripts."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from tests.helpers import run_loader, write_jsonl

if TYPE_CHECKING:
    from pathlib import Path

    from sqlalchemy.engine import Engine

    from colesbarcodes.inbox.claims import Inbox

MILK = "9300633600082"


@pytest.fixture
def loaded(engine: Engine, inbox: Inbox) -> str:
    write_jsonl(
        inbox.root / "coles_store-0584.jsonl",
        [
            {
                "sku": 1,
                "name": "Milk",
                "brand": "Dairy Co",
                "size": "2L",
                "price": 3.0,
                "barcode": MILK,
                "url": "/p/1",
            },
            {"sku": 2, "name": "Bread", "price": 4.0},
            {"sku": 3, "name": "Eggs", "price": 5.0},
        ],
    )
    write_jsonl(
        inbox.root / "coles_store-0601.jsonl",
        [{"sku": 1, "price": 3.2}, {"sku": 1, "barcode": "9300633600099"}],
    )
    write_jsonl(
        inbox.root / "woolworths.jsonl",
        [
            {
                "company": "woolworths",
                "store_id": "77",
                "sku": "W1",
                "name": "milk",
                "brand": "dairy co",
                "size": "2 l",
                "price": 3.1,
            }
        ],
    )
    url = engine.url.render_as_string(hide_password=False)
    result = run_loader(
        url, "update", "--products", "--once", "--no-progress", "--inbox", str(inbox.root)
    )
    assert result.exit_code == 0, result.output
    return url


def as_json(url: str, *args: str) -> Any:
    result = run_loader(url, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_data_quality_counts_products_skus_and_barcodes_per_company_and_store(loaded: str) -> None:
    report = as_json(loaded, "data-quality")
    assert report["totals"]["products"] == 4
    assert report["totals"]["with_barcode"] == 1
    assert report["totals"]["open_conflicts"] == 1
    coles = next(c for c in report["companies"] if c["company"] == "coles")
    assert (coles["products"], coles["with_sku"], coles["with_barcode"], coles["barcode_pct"]) == (
        3,
        3,
        1,
        33.33,
    )
    stores = {(s["company"], s["store_id"]): s for s in report["stores"]}
    assert stores[("coles", "0601")]["products"] == 1
    assert stores[("coles", "0601")]["barcode_pct"] == 100.0
    table = run_loader(loaded, "data-quality").output
    assert "Per company" in table
    assert "33.33" in table


def test_find_sku_names_the_product_and_its_company_skus(loaded: str) -> None:
    found = as_json(loaded, "find-sku", "0001")
    assert found["sku"] == 1
    assert found["barcode"] == MILK
    assert found["stores_priced"] == 2
    assert found["company_skus"] == {"coles": [1]}
    missing = run_loader(loaded, "find-sku", "999")
    assert missing.exit_code == 1
    assert "coles SKU 999 is not in the database" in missing.output


def test_inspect_product_shows_every_field_prices_and_conflicts(loaded: str) -> None:
    product_id = as_json(loaded, "find-sku", "1")["product_id"]
    product = as_json(loaded, "inspect-product", str(product_id))
    assert product["company_skus"] == {"coles": [1]}
    assert {(p["store_id"], p["price"]) for p in product["prices"]} == {
        ("0584", 3.0),
        ("0601", 3.2),
    }
    assert product["conflicts"][0]["offered_barcode"] == "9300633600099"
    assert product["group"]["key"] == "dairy co|milk|2l"
    table = run_loader(loaded, "inspect-product", str(product_id)).output
    assert "Barcode conflicts" in table
    assert "9300633600099" in table


def test_analyze_store_reports_field_presence(loaded: str) -> None:
    report = as_json(loaded, "analyze-store", "584")
    assert report["products"] == 3
    assert report["fields"]["barcode"] == {"present": 1, "pct": 33.33}
    assert report["fields"]["url"]["present"] == 1
    assert run_loader(loaded, "analyze-store", "9999").exit_code == 1


def test_compare_store_skus_splits_file_and_database(loaded: str, tmp_path: Path) -> None:
    other = write_jsonl(tmp_path / "check.jsonl", [{"sku": 2}, {"sku": 3}, {"sku": 4}, "not json"])
    report = as_json(loaded, "compare-store-skus", "0584", str(other))
    assert (report["in_both"], report["only_in_file"], report["only_in_database"]) == (2, 1, 1)
    assert report["only_in_file_sample"] == [4]
    assert report["only_in_database_sample"] == [1]
    assert report["unreadable_lines"] == 1


def test_queue_missing_barcodes_writes_the_skus_without_barcode_for_the_barcode_crawl(
    loaded: str, enrichment_inbox: Path
) -> None:
    result = run_loader(loaded, "queue-missing-barcodes", "--inbox", str(enrichment_inbox))
    assert result.exit_code == 0, result.output
    (queued,) = enrichment_inbox.glob("missing-coles-*.jsonl")
    assert f"Queued 2 coles SKUs without barcode: {queued}" in result.output
    rows = [json.loads(line) for line in queued.read_text().splitlines()]
    assert rows == [
        {"company": "coles", "sku": 2, "store_id": "0584"},
        {"company": "coles", "sku": 3, "store_id": "0584"},
    ]
    queued.unlink()
    at_0601 = run_loader(
        loaded, "queue-missing-barcodes", "--store", "0601", "--inbox", str(enrichment_inbox)
    )
    assert at_0601.exit_code == 0, at_0601.output
    assert "nothing to queue" in at_0601.output
    assert not list(enrichment_inbox.iterdir())


def test_analyze_jsonl_reports_fields_types_and_bad_lines(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "store-0584.jsonl",
        [
            {"sku": 1, "barcode": None},
            {"sku": "2", "barcode": 9300633600082},
            "{bad",
            {"name": "x"},
        ],
    )
    report = as_json(f"sqlite:///{tmp_path / 'unused.db'}", "analyze-jsonl", str(path))
    assert (report["lines"], report["objects"], report["importable"], report["bad_lines"]) == (
        4,
        3,
        2,
        2,
    )
    fields = {f["field"]: f for f in report["fields"]}
    assert fields["sku"]["types"] == {"int": 1, "string": 1}
    assert fields["barcode"]["types"] == {"null": 1, "int": 1}
    assert report["bad_reasons"] == {"not valid JSON": 1, "missing sku": 1}
    assert report["store_from_file_name"] == "0584"


def test_every_command_explains_itself_in_help(tmp_path: Path) -> None:
    for command in [
        "update",
        "analyze-jsonl",
        "analyze-store",
        "find-sku",
        "inspect-product",
        "compare-store-skus",
        "data-quality",
        "migrate",
    ]:
        result = run_loader(f"sqlite:///{tmp_path / 'x.db'}", command, "--help")
        assert result.exit_code == 0
        assert "Usage: " in result.output
        assert len(result.output.splitlines()) > 4
