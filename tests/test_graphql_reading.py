"""Reading a ``GetProductDetails`` answer: every SKU gets a fact only when the answer states it.

The real answer (``samples/coles_graphql_GetProductDetails.json``) is changed the ways the site
plausibly changes; the reader (``parse_graphql_products``) must stay total: a fact
(``found``, ``no_barcode``, ``not_found``, ``invalid_barcode``) or *not understood*, never an
exception and never a fact the answer does not say.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from colesbarcodes.gtin import InvalidGtin, parse_gtin
from colesbarcodes.site.coles import (
    ProblemKind,
    Reading,
    classify_errors,
    parse_graphql_products,
    product_alias,
    read_product_page,
)

SAMPLE_SKU = "1018067"
SAMPLE_GTIN = "9310232962085"
MAINTENANCE = (
    b"<!DOCTYPE html><html><head><title>We'll be back soon</title></head>"
    b"<body>Scheduled maintenance</body></html>"
)


SAMPLE: dict[str, Any] = json.loads(
    (Path(__file__).parent / "samples" / "coles_graphql_GetProductDetails.json").read_bytes()
)["data"]["product"]


@pytest.fixture
def sample_record() -> dict[str, Any]:
    """The real answer's product record (a copy each test may change)."""
    return copy.deepcopy(SAMPLE)


def _answer(document: Any, skus: list[str], status: int = 200) -> Any:
    return parse_graphql_products(json.dumps(document).encode(), skus, status)


def _batch(record: dict[str, Any], **aliases: Any) -> dict[str, Any]:
    """A batched answer: ``p0`` is the sample record unless given."""
    return {"data": {"p0": record, **aliases}}


# -- facts the answer states ------------------------------------------------------------


def test_the_real_answer_is_found_with_its_gtin_and_details(samples: Path) -> None:
    body = (samples / "coles_graphql_GetProductDetails.json").read_bytes()
    reading = parse_graphql_products(body, [SAMPLE_SKU]).readings[SAMPLE_SKU]
    assert reading.reading is Reading.FOUND
    assert reading.gtin is not None and reading.gtin.code == SAMPLE_GTIN
    assert reading.record is not None
    assert (reading.record.name, reading.record.brand, reading.record.size) == (
        "Charged Strong Latte Iced Coffee",
        "Dare",
        "240mL",
    )


@pytest.mark.parametrize("empty", [None, "", "   "])
def test_a_present_and_empty_gtin_is_no_barcode(sample_record: dict[str, Any], empty: Any) -> None:
    record = {**sample_record, "gtin": empty}
    reading = _answer({"data": {"product": record}}, [SAMPLE_SKU]).readings[SAMPLE_SKU]
    assert reading.reading is Reading.NO_BARCODE


def test_a_gtin_sent_as_a_number_is_found(sample_record: dict[str, Any]) -> None:
    record = {**sample_record, "gtin": int(SAMPLE_GTIN)}
    reading = _answer({"data": {"product": record}}, [SAMPLE_SKU]).readings[SAMPLE_SKU]
    assert reading.reading is Reading.FOUND


def test_a_gtin_that_fails_validation_is_invalid_barcode(sample_record: dict[str, Any]) -> None:
    record = {**sample_record, "gtin": "9310232962084"}
    reading = _answer({"data": {"product": record}}, [SAMPLE_SKU]).readings[SAMPLE_SKU]
    assert reading.reading is Reading.INVALID_BARCODE
    assert "check digit" in reading.reason


def test_a_null_product_is_not_found_when_the_error_says_so_or_none_names_it(
    sample_record: dict[str, Any],
) -> None:
    answer = _answer(
        {
            "data": {"p0": sample_record, "p1": None, "p2": None},
            "errors": [{"message": "Product 22 not found", "path": ["p1"]}],
        },
        [SAMPLE_SKU, "22", "33"],
    )
    assert answer.readings["22"].reading is Reading.NOT_FOUND
    assert answer.readings["33"].reading is Reading.NOT_FOUND  # a bare null, as in 2024
    assert answer.readings[SAMPLE_SKU].reading is Reading.FOUND


# -- what the answer does not state -----------------------------------------------------


def test_an_error_on_the_gtin_field_is_never_no_barcode(sample_record: dict[str, Any]) -> None:
    """The server failed to resolve ``gtin``: null and named in an error, not absent."""
    record = {**sample_record, "gtin": None}
    answer = _answer(
        {
            "data": {"p0": record, "p1": {**sample_record, "id": 22, "gtin": None}},
            "errors": [{"message": "upstream timeout", "path": ["p0", "gtin"]}],
        },
        [SAMPLE_SKU, "22"],
    )
    failed = answer.readings[SAMPLE_SKU]
    assert failed.reading is Reading.NOT_UNDERSTOOD and not failed.rejected
    assert "upstream timeout" in failed.reason
    assert answer.readings["22"].reading is Reading.NO_BARCODE  # its neighbour is whole


def test_an_error_on_another_field_leaves_a_found_barcode_but_never_an_absent_one(
    sample_record: dict[str, Any],
) -> None:
    errors = [{"message": "brand service down", "path": ["p0", "brand"]}]
    found = _answer({**_batch(sample_record, p1=None), "errors": errors}, [SAMPLE_SKU, "2"])
    assert found.readings[SAMPLE_SKU].reading is Reading.FOUND
    empty = {**sample_record, "gtin": None}
    absent = _answer({**_batch(empty, p1=None), "errors": errors}, [SAMPLE_SKU, "2"])
    assert absent.readings[SAMPLE_SKU].reading is Reading.NOT_UNDERSTOOD


def test_an_error_without_a_path_concerns_every_sku_of_the_document(
    sample_record: dict[str, Any],
) -> None:
    answer = _answer(
        {**_batch(sample_record, p1=None), "errors": [{"message": "Internal server error"}]},
        [SAMPLE_SKU, "2"],
    )
    assert answer.problem is None
    assert {r.reading for r in answer.readings.values()} == {Reading.NOT_UNDERSTOOD}


def test_one_unknown_sku_that_nulls_the_whole_document_costs_the_others_nothing() -> None:
    """A schema that declares the root field non-null propagates the null to ``data``."""
    answer = _answer(
        {"data": None, "errors": [{"message": "Product 55 not found", "path": ["p2"]}]},
        ["11", "22", "55", "66"],
    )
    assert answer.problem is None
    assert answer.readings == {"55": answer.readings["55"]}
    assert answer.readings["55"].reading is Reading.NOT_FOUND
    assert answer.ask_again == ["11", "22", "66"]


def test_a_not_found_error_sent_as_bad_input_is_still_an_answer_about_that_sku() -> None:
    error = {
        "message": "Product 55 not found",
        "path": ["p1"],
        "extensions": {"code": "BAD_USER_INPUT"},
    }
    answer = _answer({"data": None, "errors": [error]}, ["11", "55"])
    assert answer.readings["55"].reading is Reading.NOT_FOUND
    assert not answer.readings["55"].rejected


def test_a_one_product_document_nulled_by_not_found_without_a_path_is_not_found() -> None:
    answer = _answer({"data": None, "errors": [{"message": "Product 55 not found"}]}, ["55"])
    assert answer.readings["55"].reading is Reading.NOT_FOUND


def test_a_not_found_error_naming_another_field_is_no_answer_about_the_one_product() -> None:
    error = {"message": "Product 22 not found", "path": ["somethingElse"]}
    answer = _answer({"data": None, "errors": [error]}, ["55"])
    assert answer.problem is not None  # the document failed; nothing is said of SKU 55
    assert not answer.readings and not answer.ask_again


@pytest.mark.parametrize(
    "error",
    [
        {"message": "Invalid StoreId: COL:9999", "path": ["p1"]},
        {"message": "x", "path": ["p1"], "extensions": {"code": "BAD_USER_INPUT"}},
    ],
)
def test_the_sites_contract_errors_on_one_alias_are_rejections(
    sample_record: dict[str, Any], error: dict[str, Any]
) -> None:
    answer = _answer({**_batch(sample_record, p1=None), "errors": [error]}, [SAMPLE_SKU, "2"])
    assert answer.readings["2"].reading is Reading.NOT_UNDERSTOOD
    assert answer.readings["2"].rejected


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda r: r.pop("gtin"), "no gtin field"),
        (lambda r: r.update(id=999), "answered for SKU 999"),
        (lambda r: r.pop("id"), "no usable id"),
        (lambda r: r.update(gtin={"value": SAMPLE_GTIN}), "gtin is a dict"),
    ],
)
def test_a_record_of_the_wrong_shape_is_not_understood(
    sample_record: dict[str, Any], change: Any, reason: str
) -> None:
    record = copy.deepcopy(sample_record)
    change(record)
    reading = _answer({"data": {"product": record}}, [SAMPLE_SKU]).readings[SAMPLE_SKU]
    assert reading.reading is Reading.NOT_UNDERSTOOD and reading.unreadable
    assert reason in reading.reason


@pytest.mark.parametrize(
    ("body", "content_type", "seen"),
    [
        (MAINTENANCE, "text/html; charset=utf-8", "HTTP 200, text/html, "),
        (b"", "application/json", "empty body"),
        (b'{"data": {"product": {"id": 1018067, "gt', "application/json", "not JSON"),
        (b"[]", "application/json", "not a JSON object"),
        (b'{"result": {}}', "application/json", "neither data nor errors"),
        (b'{"data": "maintenance"}', "application/json", "data is not an object"),
    ],
)
def test_an_answer_that_is_no_graphql_answer_is_unreadable_and_says_what_it_was(
    body: bytes, content_type: str, seen: str
) -> None:
    answer = parse_graphql_products(body, [SAMPLE_SKU, "2"], 200, content_type)
    assert answer.problem is not None and answer.problem.kind is ProblemKind.UNREADABLE
    assert seen in answer.problem.message
    assert not answer.readings and not answer.ask_again


def test_the_maintenance_page_is_named_by_its_first_bytes() -> None:
    answer = parse_graphql_products(MAINTENANCE, ["1"], 200, "text/html")
    assert answer.problem is not None
    assert "<!DOCTYPE html><html><head><title>We'll be back soon" in answer.problem.message


@pytest.mark.parametrize(
    ("status", "errors", "kind"),
    [
        (
            400,
            [{"message": "Query is too complex: 30 > 24", "extensions": {"code": "X"}}],
            "too_complex",
        ),
        (413, None, "too_complex"),
        (400, [{"message": 'Cannot query field "gtin" on type "Product".'}], "rejected"),
        (400, [{"message": "x", "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"}}], "rejected"),
        (200, [{"message": "Invalid StoreId: COL:9999"}], "rejected"),
        (200, [{"message": "x", "extensions": {"code": "BAD_USER_INPUT"}}], "rejected"),
        (200, [{"message": "x", "extensions": {"code": "VALIDATION_ERROR"}}], "rejected"),
        (500, [{"message": "Internal server error"}], "server"),
        (502, None, "server"),
    ],
)
def test_documents_refused_whole_are_told_apart(status: int, errors: object, kind: str) -> None:
    assert classify_errors(errors, status).kind == ProblemKind(kind)
    body = json.dumps({"errors": errors} if errors else {}).encode()
    answer = parse_graphql_products(body if errors else b"<html>bad gateway</html>", ["1"], status)
    assert answer.problem is not None and answer.problem.kind == ProblemKind(kind)


def test_a_product_page_that_is_not_the_page_is_not_understood(samples: Path) -> None:
    assert read_product_page(MAINTENANCE, "8060378").reading is Reading.NOT_UNDERSTOOD
    challenge = (samples / "coles_bot_check_page.html").read_bytes()
    assert read_product_page(challenge, "8060378").reading is Reading.NOT_UNDERSTOOD
    assert read_product_page(b"", "8060378", 503).reading is Reading.NOT_UNDERSTOOD
    assert read_product_page(b"gone", "8060378", 404).reading is Reading.NOT_FOUND
    page = (samples / "coles_product_page_jsonld_2025.html").read_bytes()
    assert read_product_page(page, "6845664").reading is Reading.FOUND


# -- the property: whatever the answer, no fact it does not state ----------------------

MESSAGES = [
    "Product 22 not found",
    "Internal server error",
    "upstream timeout",
    "Invalid StoreId: COL:0584",
    "",
]
CODES = [None, "BAD_USER_INPUT", "INTERNAL_SERVER_ERROR", "NOT_FOUND", "GRAPHQL_VALIDATION_FAILED"]
GTINS: list[Any] = [
    SAMPLE_GTIN,
    None,
    "",
    " ",
    int(SAMPLE_GTIN),
    "9310232962084",
    "abc",
    [],
    {},
    True,
    0,
]


def _value(draw: st.DrawFn, record: dict[str, Any], sku: str) -> Any:
    """One alias's value: the record (maybe changed), null, absent, or the wrong shape."""
    kind = draw(
        st.sampled_from(["record", "record", "record", "null", "absent", "list", "str", "wrapped"])
    )
    if kind == "null":
        return None
    if kind == "absent":
        return _ABSENT
    if kind == "list":
        return [record]
    if kind == "str":
        return sku
    value = dict(record, id=int(sku))
    if draw(st.booleans()):
        value["gtin"] = draw(st.sampled_from(GTINS))
    change = draw(st.sampled_from(["none", "drop_gtin", "drop_id", "rename_gtin", "other_id"]))
    if change == "drop_gtin":
        value.pop("gtin")
    elif change == "drop_id":
        value.pop("id")
    elif change == "rename_gtin":
        value["GTIN"] = value.pop("gtin")
    elif change == "other_id":
        value["id"] = int(sku) + 1
    return {"product": value} if kind == "wrapped" else value


_ABSENT = object()


@st.composite
def mutated_answers(draw: st.DrawFn) -> tuple[bytes, list[str], int]:
    base = {k: v for k, v in SAMPLE.items() if k in ("name", "brand", "size", "gtin", "pricing")}
    skus = [str(1018067 + 11 * i) for i in range(draw(st.integers(1, 4)))]
    aliases = [product_alias(i, len(skus)) for i in range(len(skus))]
    data: dict[str, Any] = {}
    for alias, sku in zip(aliases, skus, strict=True):
        value = _value(draw, base, sku)
        if value is not _ABSENT:
            data[alias] = value
    errors: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(0, 3))):
        error: dict[str, Any] = {"message": draw(st.sampled_from(MESSAGES))}
        path = draw(
            st.sampled_from(
                ["none", "alias", "alias_gtin", "alias_brand", "alias_id", "other", "bad"]
            )
        )
        alias = draw(st.sampled_from(aliases))
        if path == "alias":
            error["path"] = [alias]
        elif path.startswith("alias_"):
            error["path"] = [alias, path.removeprefix("alias_")]
        elif path == "other":
            error["path"] = ["somethingElse"]
        elif path == "bad":
            error["path"] = alias
        code = draw(st.sampled_from(CODES))
        if code:
            error["extensions"] = {"code": code}
        errors.append(error)
    document: dict[str, Any] = {}
    shape = draw(st.sampled_from(["data", "data", "null", "missing", "wrapped"]))
    if shape == "data":
        document["data"] = data
    elif shape == "null":
        document["data"] = None
    elif shape == "wrapped":
        document["data"] = {"result": data}
    empty_errors = draw(st.booleans())  # "errors": [] is an answer too
    if errors or empty_errors:
        document["errors"] = errors
    body = json.dumps(document).encode()
    form = draw(st.sampled_from(["json", "json", "json", "cut", "html", "empty"]))
    if form == "cut":
        body = body[: draw(st.integers(0, max(0, len(body) - 1)))]
    elif form == "html":
        body = MAINTENANCE
    elif form == "empty":
        body = b""
    return body, skus, draw(st.sampled_from([200, 200, 200, 400, 500]))


def _states(document: Any, skus: list[str], sku: str) -> set[Reading]:
    """The facts an answer really states of ``sku``, decided from the document alone."""
    if not isinstance(document, dict):
        return set()
    alias = product_alias(skus.index(sku), len(skus))
    errors = document.get("errors") or []
    if not isinstance(errors, list):
        return set()
    paths = [e.get("path") if isinstance(e, dict) else None for e in errors]
    naming = [
        e for e, p in zip(errors, paths, strict=True) if isinstance(p, list) and p and p[0] == alias
    ]
    pathless = [e for e, p in zip(errors, paths, strict=True) if not (isinstance(p, list) and p)]
    not_found = bool(naming) and all("not found" in str(e.get("message")) for e in naming)
    data = document.get("data")
    if data is None:
        concerning = naming + (pathless if len(skus) == 1 else [])
        if concerning and all("not found" in str(e.get("message")) for e in concerning):
            return {Reading.NOT_FOUND}
        return set()
    if not isinstance(data, dict) or alias not in data:
        return set()
    value = data[alias]
    if value is None:
        return {Reading.NOT_FOUND} if (not naming or not_found) else set()
    if not isinstance(value, dict) or str(value.get("id")) != sku or "gtin" not in value:
        return set()
    if pathless:
        return set()
    on_barcode = [e for e in naming if len(e["path"]) == 1 or e["path"][1] in ("gtin", "id")]
    gtin = value["gtin"]
    if isinstance(gtin, bool) or not isinstance(gtin, str | int | type(None)):
        return set()
    try:
        parsed = parse_gtin(gtin)
    except InvalidGtin:
        return set() if on_barcode else {Reading.INVALID_BARCODE}
    if parsed is None:
        return set() if naming else {Reading.NO_BARCODE}
    return set() if on_barcode else {Reading.FOUND}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_answers())
def test_no_mutation_of_the_real_answer_yields_a_fact_it_does_not_state(
    case: tuple[bytes, list[str], int],
) -> None:
    body, skus, status = case
    answer = parse_graphql_products(body, skus, status)  # never raises
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if answer.problem is not None:
        assert not answer.readings and not answer.ask_again
        return
    assert set(answer.readings).isdisjoint(answer.ask_again)
    assert set(answer.readings) | set(answer.ask_again) == set(skus)
    if answer.ask_again:
        assert isinstance(document, dict) and document.get("data") is None
    for sku, reading in answer.readings.items():
        if reading.reading is Reading.NOT_UNDERSTOOD:
            continue
        assert reading.reading in _states(document, skus, sku), (sku, reading, document)
