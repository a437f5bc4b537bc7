"""Inbox line shapes: the canonical line and Coles' own listing rows."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st

from colesbarcodes.lines import LineError, parse_line, parse_object, store_from_filename

if TYPE_CHECKING:
    from pathlib import Path


def test_canonical_line_with_every_field() -> None:
    line = parse_line(
        json.dumps(
            {
                "company": "coles",
                "store_id": "0584",
                "sku": 122234,
                "name": "Full Cream Milk",
                "brand": "Coles",
                "size": "2L",
                "price": 3.1,
                "was_price": 3.5,
                "unit_price": "1.55",
                "barcode": 9300633600082,
                "url": "https://www.coles.com.au/product/coles-full-cream-milk-2l-122234",
                "scraped_at": "2026-11-23T06:00:00Z",
            }
        )
    )
    assert line is not None
    assert (line.company, line.store_id, line.sku) == ("coles", "0584", "122234")
    assert (line.price, line.was_price, line.unit_price) == (3.1, 3.5, 1.55)
    assert line.barcode is not None
    assert line.barcode.code == "9300633600082"
    assert line.scraped_at is not None
    assert line.scraped_at.isoformat() == "2026-11-23T06:00:00+00:00"


def test_company_defaults_to_coles_and_barcode_may_be_missing_or_null() -> None:
    for raw in (
        '{"sku": "00123", "store_id": 584}',
        '{"sku": 123, "store_id": "0584", "barcode": null}',
    ):
        line = parse_line(raw)
        assert line is not None
        assert (line.company, line.sku, line.store_id, line.barcode) == (
            "coles",
            "123",
            "0584",
            None,
        )


def test_other_retailers_keep_string_skus() -> None:
    line = parse_line('{"company": "Woolworths", "sku": "ABC-12", "store_id": "1234"}')
    assert line is not None
    assert (line.company, line.sku) == ("woolworths", "ABC-12")


def test_invalid_barcode_keeps_the_line_and_says_why() -> None:
    line = parse_line('{"sku": 5, "store_id": "0584", "barcode": "9300633600083"}')
    assert line is not None
    assert line.barcode is None
    assert line.barcode_error == "wrong check digit"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ('{"sku": 1, "name": ', "not valid JSON"),
        ("[1, 2]", "a line must be a JSON object"),
        ('{"name": "no sku"}', "missing sku"),
        ('{"sku": "12a"}', "is not a positive integer"),
        ('{"sku": 1, "price": "cheap"}', "price 'cheap' is not a number"),
        ('{"sku": 1, "price": -2}', "out of range"),
        ('{"sku": 1, "name": {"en": "x"}}', "name must be a string"),
        ('{"sku": 1, "available": "yes"}', "available must be true or false"),
        ('{"sku": 1, "scraped_at": "yesterday"}', "is not an ISO 8601 time"),
        ('{"sku": true}', "sku must be a number or a string"),
        ('{"company": "co les", "sku": 1}', "bad company"),
    ],
)
def test_malformed_lines_raise_line_error_with_a_reason(raw: str, reason: str) -> None:
    with pytest.raises(LineError) as excinfo:
        parse_line(raw)
    assert reason in excinfo.value.reason


def test_every_product_row_of_the_real_listing_samples_parses(samples: Path) -> None:
    for name in ("coles_listing_fruit-vegetables_1.json", "coles_listing_page_small.json"):
        results = json.loads((samples / name).read_text())["pageProps"]["searchResults"]["results"]
        products = [r for r in results if r["_type"] == "PRODUCT"]
        parsed = [parse_object(r, "0584") for r in results]
        assert sum(p is not None for p in parsed) == len(products)
        for row, line in zip(results, parsed, strict=True):
            if row["_type"] != "PRODUCT":
                assert line is None  # ads and cross-sell tiles are skipped
                continue
            assert line is not None
            assert line.sku == str(row["id"])
            assert line.store_id == "0584"
            assert line.name == row["name"]
            pricing = row["pricing"] or {}  # unavailable products come without pricing
            assert line.price == pricing.get("now")
            assert line.was_price == (pricing.get("was") or None)
            assert line.unit_price == (pricing.get("unit") or {}).get("price")
            assert line.barcode is None


def test_raw_row_takes_its_store_from_the_line_before_the_file_name() -> None:
    row = {
        "_type": "PRODUCT",
        "id": 42,
        "name": "X",
        "storeId": "0601",
        "pricing": {"now": 1, "was": 0},
    }
    line = parse_object(row, "0584")
    assert line is not None
    assert line.store_id == "0601"


@pytest.mark.parametrize(
    ("name", "store"),
    [
        ("coles_store-0584_2026-11-24.jsonl", "0584"),
        ("STORE_0601.jsonl", "0601"),
        ("products-store0584.jsonl", "0584"),
        ("coles_2026-11-24.jsonl", None),
    ],
)
def test_store_comes_from_the_file_name(name: str, store: str | None) -> None:
    assert store_from_filename(name) == store


@given(st.binary(max_size=200))
def test_arbitrary_bytes_parse_or_raise_line_error(raw: bytes) -> None:
    try:
        parse_line(raw)
    except LineError as exc:
        assert exc.reason
