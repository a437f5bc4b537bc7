"""Inbox line shapes: the canonical line and Coles' own listing rows."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from colesbarcodes.inbox.lines import (
    LineError,
    ProductLine,
    decode_line,
    fast_canonical_line,
    parse_line,
    parse_object,
    store_from_filename,
)

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
        # values the database could not hold must never reach it
        ('{"sku": 1, "scraped_at": "9999-12-31T23:59:59-23:59"}', "is out of range"),
        ('{"sku": 1, "scraped_at": "0001-01-01T00:00:00+23:59"}', "is out of range"),
        ('{"sku": 1.5e300}', "too large for a JSON number"),
        ('{"sku": 12345678901234567890123}', "too large for a JSON number"),
        ('{"sku": 1, "price": 1000000000}', "price 1000000000 is out of range"),
        ('{"sku": 1, "state": "' + "x" * 33 + '"}', "state longer than 32 characters"),
        ('{"sku": 1, "name": "a\\u0000b"}', "name contains a NUL character"),
        ('{"sku": 1, "url": "https://x/\\u0000"}', "url contains a NUL character"),
        ('{"_type": "PRODUCT", "id": 1, "brand": "\\u0000"}', "brand contains a NUL character"),
        ('{"sku": 1, "name": "\\ud800"}', "not valid JSON: no low surrogate"),
        ('{"sku": 1, "store_id": "' + " " * 70 + '0584"}', "bad store_id"),
        ('{"sku": 1, "scraped_at": "' + " " * 70 + '2026-11-23"}', "is not an ISO 8601 time"),
        ('{"company": "' + " " * 70 + 'coles", "sku": 1}', "bad company"),
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


def test_a_reason_quoting_a_long_value_is_cut_short() -> None:
    with pytest.raises(LineError) as excinfo:
        parse_line('{"sku": 1, "price": "' + "9" * 5000 + 'x"}')
    assert excinfo.value.reason.startswith("price '999")
    assert len(excinfo.value.reason) == 300


@pytest.mark.parametrize("depth", [1025, 100_000])
def test_deeply_nested_json_is_a_line_error_not_a_recursion_error(depth: int) -> None:
    for raw in (
        "[" * depth + "]" * depth,
        '{"sku": 1, "name": ' + "[" * depth + "]" * depth + "}",
        '{"sku": 1, "barcode": ' + '{"a": ' * depth + "1" + "}" * depth + "}",
    ):
        with pytest.raises(LineError) as excinfo:
            parse_line(raw)
        assert excinfo.value.reason.startswith("not valid JSON: depth limit exceeded")


def test_nesting_within_the_limit_is_judged_by_the_field_it_is_in() -> None:
    with pytest.raises(LineError, match="name must be a string, not list"):
        parse_line('{"sku": 1, "name": ' + "[" * 1000 + "]" * 1000 + "}")
    with pytest.raises(LineError, match="bad company <list>"):
        parse_line('{"sku": 1, "company": ' + "[" * 1000 + "]" * 1000 + "}")
    line = parse_line('{"sku": 1, "barcode": ' + "[" * 1000 + "]" * 1000 + "}")
    assert line is not None
    assert line.barcode_error == "unsupported type list"


def assert_fits_the_database(line: ProductLine | None) -> None:
    """What the tables can hold (column sizes, numeric(12, 3), no NUL in PostgreSQL text)."""
    if line is None:
        return
    assert 0 < len(line.company) <= 32
    assert 0 < len(line.sku) <= 64
    assert line.store_id is None or 0 < len(line.store_id) <= 32
    assert line.state is None or len(line.state) <= 32
    for text in (line.company, line.sku, line.store_id, line.name, line.brand, line.size):
        assert text is None or ("\x00" not in text and len(text) <= 1000)
    for text in (line.url, line.store_name, line.state):
        assert text is None or ("\x00" not in text and len(text) <= 1000)
    for amount in (line.price, line.was_price, line.unit_price):
        assert amount is None or 0 <= amount <= 999_999_999.999
    assert line.barcode is None or len(line.barcode.code) in (13, 14)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_parse_or_raise_line_error(raw: bytes) -> None:
    try:
        line = parse_line(raw)
    except LineError as exc:
        assert exc.reason
    else:
        assert_fits_the_database(line)


FIELDS = (
    "company",
    "store_id",
    "sku",
    "id",
    "_type",
    "name",
    "brand",
    "size",
    "price",
    "was_price",
    "unit_price",
    "available",
    "barcode",
    "gtin",
    "url",
    "scraped_at",
    "store_name",
    "state",
    "pricing",
)
# JSON as orjson decodes it: integers within 64 bits (larger ones become floats), finite
# floats, any text (including NUL and other control characters, written as escapes).
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.sampled_from(["", " ", "0584", "9300633600082", "PRODUCT", "2026-11-23T06:00:00Z"]),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
LINE_OBJECTS = st.dictionaries(st.sampled_from(FIELDS), JSON_VALUES, max_size=8) | JSON_VALUES


@settings(max_examples=500)
@given(LINE_OBJECTS)
def test_any_json_value_written_as_a_line_parses_to_storable_values_or_a_line_error(
    value: object,
) -> None:
    raw = json.dumps(value).encode()
    try:
        line = parse_line(raw, "0584")
    except LineError as exc:
        assert exc.reason
        assert len(exc.reason) <= 300
    else:
        assert_fits_the_database(line)


@given(
    st.recursive(
        st.one_of(JSON_SCALARS, st.integers(), st.floats()),  # and integers of any size
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.sampled_from(FIELDS), inner, max_size=6)
        ),
        max_leaves=10,
    )
)
def test_any_decoded_value_parses_to_storable_values_or_a_line_error(value: object) -> None:
    try:
        line = parse_object(value, "0584")
    except LineError as exc:
        assert exc.reason
    else:
        assert_fits_the_database(line)


VALID_LINE = (
    b'{"company": "coles", "store_id": "0584", "sku": 122234, "name": "Full Cream Milk",'
    b' "price": 3.1, "barcode": "9300633600082", "scraped_at": "2026-11-23T06:00:00Z"}'
)


# bytes inserted into a valid line: NUL, invalid UTF-8, a surrogate (raw and escaped), a BOM
HOSTILE_BYTES = st.sampled_from(
    [b"\x00", b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xef\xbb\xbf", b"\r", b"\\ud800", b" "]
) | st.binary(min_size=1, max_size=4)
POSITIONS = st.integers(min_value=0, max_value=len(VALID_LINE))


@given(position=POSITIONS, junk=HOSTILE_BYTES)
def test_a_valid_line_with_hostile_bytes_inserted_parses_or_raises_line_error(
    position: int, junk: bytes
) -> None:
    raw = VALID_LINE[:position] + junk + VALID_LINE[position:]
    try:
        line = parse_line(raw)
    except LineError as exc:
        assert exc.reason
    else:
        assert_fits_the_database(line)


def _general_reading(raw: bytes) -> object:
    """What the general way makes of a line: a product line, ``None``, or the error's reason."""
    try:
        return parse_object(decode_line(raw), "0584")
    except LineError as exc:
        return exc.reason


def _fast_reading(raw: bytes) -> object:
    """What the fast decode makes of it: ``not read`` when it hands the line over."""
    try:
        line = fast_canonical_line(raw, "0584")
    except LineError as exc:
        return exc.reason
    return "not read" if line is None else line


CANONICAL_NAMES = tuple(sorted(set(FIELDS) - {"sku", "id", "_type", "pricing"}))
CANONICAL_OBJECTS = st.fixed_dictionaries(
    {"sku": JSON_SCALARS | st.integers() | st.floats()},
    optional={
        key: JSON_SCALARS | st.integers() | st.floats() | JSON_VALUES for key in CANONICAL_NAMES
    },
)


@settings(max_examples=1000)
@given(CANONICAL_OBJECTS | LINE_OBJECTS)
def test_the_fast_decode_of_a_canonical_line_reads_it_as_the_general_way_does(
    value: object,
) -> None:
    for raw in (json.dumps(value).encode(), json.dumps(value, ensure_ascii=False).encode()):
        fast = _fast_reading(raw)
        if fast != "not read":
            assert fast == _general_reading(raw)


@given(position=POSITIONS, junk=HOSTILE_BYTES)
def test_the_fast_decode_agrees_on_a_valid_line_with_hostile_bytes_inserted(
    position: int, junk: bytes
) -> None:
    raw = VALID_LINE[:position] + junk + VALID_LINE[position:]
    fast = _fast_reading(raw)
    if fast != "not read":
        assert fast == _general_reading(raw)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(VALID_LINE, id="a plain line"),
        pytest.param(b'{"sku": 1, "sku": 2, "price": 1.0, "price": -1}', id="repeated fields"),
        pytest.param(b'{"sku": 1, "name": "\\ud800"}', id="a lone surrogate"),
        pytest.param(b'{"sku": 1, "barcode": null, "gtin": "9300633600082"}', id="null barcode"),
        pytest.param(b'{"sku": 1, "gtin": "9300633600082"}', id="gtin"),
        pytest.param(b'{"sku": 1, "price": 0, "was_price": 0, "unit_price": -0.0}', id="zeros"),
        pytest.param(b'{"sku": 1, "price": 100000000000000000000000}', id="a huge integer"),
        pytest.param(b'{"sku": "0012", "store_id": 584, "company": " Coles "}', id="padded"),
        pytest.param(b'{"sku": 1, "scraped_at": "2026-11-23T06:00:00+11:00"}', id="offset"),
        pytest.param('{"sku": "\u0661\u0662"}'.encode(), id="digits of another script"),
        pytest.param(b'{"sku": " 123", "store_id": "584"}', id="a padded sku"),
        pytest.param(b'{"sku": "00"}', id="zeros sku"),
        pytest.param(b'{"sku": "123", "company": "woolworths"}', id="another company's sku"),
    ],
)
def test_the_fast_decode_reads_edge_lines_as_the_general_way_does(raw: bytes) -> None:
    fast = _fast_reading(raw)
    assert fast == _general_reading(raw) or fast == "not read"


def test_a_canonical_line_of_common_types_takes_the_fast_decode() -> None:
    line = fast_canonical_line(VALID_LINE, None)
    assert line == parse_line(VALID_LINE)
    assert line is not None and line.barcode is not None


def test_a_line_with_a_field_the_loader_does_not_read_is_left_to_the_general_way() -> None:
    assert fast_canonical_line(b'{"sku": 1, "Barcode": "9300633600082"}', None) is None
    assert fast_canonical_line(b'{"_type": "PRODUCT", "sku": 1}', None) is None
