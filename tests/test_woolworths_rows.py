"""Woolworths' listing rows in the product inbox, as they come, and the company of a line.

The real listing answer of ``tests/samples`` is imported one row a line and whole on one
line; a product sold by both retailers under one global GTIN is one product; in-store
codes never merge; the company comes from the line, else the file name, else ``coles``;
fields the loader does not know are reported once per file, with what they probably meant.
"""

from __future__ import annotations

import copy
import json
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from colesbarcodes.db.models import CompanySku, ImportedFile, Product, Store, StorePrice
from colesbarcodes.gtin import normalize_gtin
from colesbarcodes.inbox.enrichment import EnrichmentInbox
from colesbarcodes.inbox.line_reader import LineReader, company_from_filename, did_you_mean
from colesbarcodes.inbox.lines import LineError, LineRows, ProductLine, parse_line
from colesbarcodes.site.woolworths import ONLINE_STORE, ONLINE_STORE_NAME
from tests.helpers import run_loader, write_jsonl
from tests.test_lines import JSON_VALUES, assert_fits_the_database

if TYPE_CHECKING:
    from pathlib import Path

    from click.testing import Result
    from sqlalchemy.engine import Engine

    from colesbarcodes.inbox.claims import Inbox

SAMPLE = "woolworths_listing_category_1.json"
STRAWBERRIES = "9300633026028"  # Stockcode 144607 in the sample, a global GTIN
BANANAS = "0264011000002"  # Stockcode 133211: an in-store code (loose produce)


@pytest.fixture
def answer(samples: Path) -> dict[str, Any]:
    """The real listing answer (36 product rows, total 470)."""
    loaded: dict[str, Any] = json.loads((samples / SAMPLE).read_text())
    return loaded


def sample_rows(answer: dict[str, Any]) -> list[dict[str, Any]]:
    return [row for bundle in answer["Bundles"] for row in bundle["Products"]]


def update(engine: Engine, inbox: Inbox) -> Result:
    result = run_loader(
        engine.url.render_as_string(hide_password=False),
        "update",
        "--products",
        "--once",
        "--no-progress",
        "--inbox",
        str(inbox.root),
    )
    assert result.exit_code == 0, result.output
    return result


def skus_of(engine: Engine) -> dict[tuple[str, str], tuple[int, str | None]]:
    """(company, SKU) → (product id, its barcode)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(CompanySku.company, CompanySku.sku, Product.id, Product.barcode).join(
                Product, Product.id == CompanySku.product_id
            )
        ).all()
    return {(company, sku): (product, barcode) for company, sku, product, barcode in rows}


def quarantined(inbox: Inbox) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for path in sorted(inbox.quarantine.glob("*.quarantine.jsonl"))
        for line in path.read_text().splitlines()
    ]


def last_import_run(engine: Engine) -> dict[str, Any]:
    url = engine.url.render_as_string(hide_password=False)
    runs = json.loads(run_loader(url, "runs", "--imports", "--json").stdout)
    run: dict[str, Any] = runs[0]
    return run


# -- the real rows, imported -----------------------------------------------------------------


@pytest.mark.parametrize("shape", ["one row a line", "the whole answer on one line"])
def test_the_real_listing_rows_are_imported_with_their_barcodes_and_online_prices(
    engine: Engine, inbox: Inbox, answer: dict[str, Any], shape: str
) -> None:
    rows = sample_rows(answer)
    lines: list[Any] = rows if shape == "one row a line" else [answer]
    write_jsonl(inbox.root / "woolworths_fruit-veg_2026-11-23.jsonl", lines)
    result = update(engine, inbox)
    assert "36 new SKUs" in result.output
    assert quarantined(inbox) == []

    skus = skus_of(engine)
    assert {company for company, _ in skus} == {"woolworths"}
    assert {sku: barcode for (_, sku), (_, barcode) in skus.items()} == {
        str(row["Stockcode"]): normalize_gtin(row["Barcode"]) for row in rows
    }
    with engine.connect() as conn:
        prices = dict(
            conn.execute(
                select(CompanySku.sku, StorePrice.price)
                .join(Store, Store.id == StorePrice.store_pk)
                .join(CompanySku, CompanySku.id == StorePrice.sku_pk)
                .where(Store.company == "woolworths", Store.store_id == ONLINE_STORE)
            ).all()
        )
        store_name = conn.scalar(select(Store.name).where(Store.store_id == ONLINE_STORE))
    assert prices == {str(row["Stockcode"]): row["Price"] for row in rows}
    assert store_name == ONLINE_STORE_NAME

    # the file's SKUs are the online store's: compare-store-skus reads the same rows
    (archived,) = inbox.archive.glob("*.jsonl")
    url = engine.url.render_as_string(hide_password=False)
    compared = run_loader(
        url, "compare-store-skus", "online", str(archived), "--company", "woolworths", "--json"
    )
    assert compared.exit_code == 0, compared.output
    report = json.loads(compared.stdout)
    assert (report["in_both"], report["only_in_file"], report["unreadable_lines"]) == (36, 0, 0)


def test_a_row_names_its_product_page_and_keeps_a_was_price_only_above_the_price(
    answer: dict[str, Any],
) -> None:
    row = sample_rows(answer)[3]  # Strawberries, 144607: WasPrice equals Price
    line = parse_line(json.dumps(row))
    assert line is not None
    assert (line.company, line.sku, line.store_id) == ("woolworths", "144607", ONLINE_STORE)
    assert line.url == "https://www.woolworths.com.au/shop/productdetails/144607/strawberries"
    assert (line.name, line.size, line.price, line.was_price) == (
        "Strawberries",
        "250g Punnet",
        5.5,
        None,
    )
    assert line.unit_price == row["CupPrice"]
    assert line.available is True
    on_special = {**row, "WasPrice": 7.0, "IsInStock": False, "Name": None}
    line = parse_line(json.dumps(on_special))
    assert line is not None
    assert (line.was_price, line.available, line.name) == (7.0, False, row["DisplayName"])


# -- one product per GTIN across the retailers ----------------------------------------------


def test_a_coles_line_and_a_woolworths_row_with_the_same_global_gtin_are_one_product(
    engine: Engine, inbox: Inbox, answer: dict[str, Any]
) -> None:
    strawberries = sample_rows(answer)[3]
    assert strawberries["Barcode"] == STRAWBERRIES
    write_jsonl(
        inbox.root / "coles_store-0584_2026-11-23.jsonl",
        [{"sku": 5551234, "name": "Strawberries 250g", "price": 4.9, "barcode": STRAWBERRIES}],
    )
    write_jsonl(inbox.root / "woolworths_2026-11-23.jsonl", [strawberries])
    update(engine, inbox)
    skus = skus_of(engine)
    assert skus[("coles", "5551234")] == skus[("woolworths", "144607")]
    with engine.connect() as conn:
        assert conn.scalars(select(Product.barcode)).all() == [STRAWBERRIES]
        assert len(conn.scalars(select(CompanySku.id)).all()) == 2


def test_in_store_codes_at_both_retailers_never_merge_products(
    engine: Engine, inbox: Inbox, answer: dict[str, Any]
) -> None:
    bananas = sample_rows(answer)[0]
    assert bananas["Barcode"] == BANANAS
    write_jsonl(
        inbox.root / "coles_store-0584_2026-11-23.jsonl",
        [{"sku": 409499, "name": "Bananas Cavendish", "price": 0.8, "barcode": BANANAS}],
    )
    write_jsonl(inbox.root / "woolworths_2026-11-23.jsonl", [bananas])
    update(engine, inbox)
    skus = skus_of(engine)
    coles, woolworths = skus[("coles", "409499")], skus[("woolworths", "133211")]
    assert coles[0] != woolworths[0]
    with engine.connect() as conn:
        products = conn.execute(select(Product.barcode, Product.barcode_scope)).all()
    assert len(products) == 2
    assert (BANANAS, "in_store") in products  # stored, flagged, held by one product only


# -- the company is never guessed -----------------------------------------------------------


def test_half_converted_rows_in_a_woolworths_file_are_woolworths_skus_with_their_unknown_fields_reported(
    engine: Engine, inbox: Inbox
) -> None:
    name = "woolworths_by-hand.jsonl"
    write_jsonl(
        inbox.root / name,
        [
            {"sku": 133211, "Barcode": BANANAS, "Name": "Cavendish Bananas"},
            {"sku": 144607, "Barcode": STRAWBERRIES, "Name": "Strawberries"},
            {"sku": 105919, "barcode": "0265030000004", "Colour": "pink"},
        ],
    )
    result = update(engine, inbox)
    assert set(skus_of(engine)) == {
        ("woolworths", "133211"),
        ("woolworths", "144607"),
        ("woolworths", "105919"),
    }
    unknown = (
        f"  {name}: fields the loader does not know, ignored: "
        "Barcode (did you mean barcode?), Name (did you mean name?), Colour"
    )
    assert result.output.count(unknown) == 1  # once for the file, not once a line
    (file,) = last_import_run(engine)["files"]
    assert file["unknown_fields"] == {"Barcode": "barcode", "Name": "name", "Colour": None}


@pytest.mark.parametrize(
    ("file_name", "line", "company"),
    [
        ("woolworths_store-1234.jsonl", {"sku": "77"}, "woolworths"),
        ("2026-11-23_Woolworths.jsonl", {"sku": "77"}, "woolworths"),
        ("coles_store-0584.jsonl", {"sku": "77"}, "coles"),
        ("products.jsonl", {"sku": "77"}, "coles"),  # the documented default
        ("coles_vs_woolworths.jsonl", {"sku": "77"}, "coles"),  # names both: not a choice
        ("woolworths_store-1234.jsonl", {"sku": "77", "company": "Coles"}, "coles"),
    ],
)
def test_a_line_without_company_takes_it_from_the_file_name_else_coles(
    engine: Engine, inbox: Inbox, file_name: str, line: dict[str, Any], company: str
) -> None:
    write_jsonl(inbox.root / file_name, [line])
    update(engine, inbox)
    assert set(skus_of(engine)) == {(company, "77")}


def test_a_raw_woolworths_row_in_a_coles_file_is_still_a_woolworths_row(
    engine: Engine, inbox: Inbox, answer: dict[str, Any]
) -> None:
    write_jsonl(
        inbox.root / "coles_store-0584_mixed.jsonl",
        [{"sku": 1, "price": 2.0}, sample_rows(answer)[3]],
    )
    update(engine, inbox)
    assert set(skus_of(engine)) == {("coles", "1"), ("woolworths", "144607")}
    with engine.connect() as conn:
        stores = set(conn.execute(select(Store.company, Store.store_id)).all())
    # the Coles store of the file name is not Woolworths': its price is the online one
    assert stores == {("coles", "0584"), ("woolworths", ONLINE_STORE)}


def test_a_store_named_by_the_row_or_a_woolworths_file_name_replaces_online() -> None:
    row = {"Stockcode": 1, "Price": 1.0}
    assert LineReader("woolworths_store-1234.jsonl").read(json.dumps(row)) == ProductLine(
        "woolworths",
        "1",
        "1234",
        price=1.0,
        url="https://www.woolworths.com.au/shop/productdetails/1",
    )
    read = LineReader("woolworths.jsonl").read(json.dumps({**row, "storeId": "1101"}))
    assert isinstance(read, ProductLine)
    assert (read.store_id, read.store_name) == ("1101", None)


# -- rows that are not the shelf, rows that cannot be read ----------------------------------


def test_sponsored_and_marketplace_rows_are_skipped_and_counted_by_reason(
    engine: Engine, inbox: Inbox, answer: dict[str, Any]
) -> None:
    rows = sample_rows(answer)
    page = copy.deepcopy(answer)
    page["Bundles"][0]["Products"][0]["IsSponsoredAd"] = True
    page["Bundles"][1]["Products"][0]["IsMarketProduct"] = True
    sponsored = {**rows[5], "Stockcode": 999001, "IsSponsoredAd": True}
    name = "woolworths_page-1.jsonl"
    write_jsonl(inbox.root / name, [page, sponsored])
    result = update(engine, inbox)
    skus = {sku for _, sku in skus_of(engine)}
    assert len(skus) == 34
    assert not skus & {str(rows[0]["Stockcode"]), str(rows[1]["Stockcode"]), "999001"}
    assert f"  {name}: 3 rows skipped (sponsored 2, marketplace 1)" in result.output
    (file,) = last_import_run(engine)["files"]
    assert (file["skipped"], file["skipped_by_reason"]) == (3, {"sponsored": 2, "marketplace": 1})
    with engine.connect() as conn:
        assert conn.scalar(select(ImportedFile.rows_skipped)) == 3
    assert quarantined(inbox) == []


def test_malformed_woolworths_rows_are_quarantined_with_file_line_and_place_and_the_rest_imports(
    engine: Engine, inbox: Inbox, answer: dict[str, Any]
) -> None:
    rows = sample_rows(answer)
    page = copy.deepcopy(answer)
    page["Bundles"][1]["Products"][0] = "not a row"
    page["Bundles"][2]["Products"][0]["Price"] = "cheap"
    name = "woolworths_bad.jsonl"
    write_jsonl(
        inbox.root / name,
        [
            {**rows[0], "Stockcode": [133211]},  # line 1
            {"Bundles": {"Products": []}, "TotalRecordCount": 1},  # line 2
            page,  # line 3: two of its 36 rows cannot be read
            {**rows[3], "Barcode": "9300633026029"},  # line 4: wrong check digit
            {"Bundles": [{"Products": [{"Stockcode": None, "Price": 1}]}]},  # line 5
        ],
    )
    result = update(engine, inbox)
    records = quarantined(inbox)
    assert [(r["file"], r["line"], r["imported"]) for r in records] == [
        (name, 1, False),
        (name, 2, False),
        (name, 3, True),
        (name, 4, True),
        (name, 5, False),
    ]
    reasons = [r["reason"] for r in records]
    assert reasons[0] == "Stockcode must be a number or a string, not list"
    assert reasons[1] == "Woolworths listing answer: Bundles must be a list"
    assert reasons[2] == (
        "2 of 36 rows not imported, the others were: "
        "Bundles[1].Products[0]: a product row must be an object, not str; "
        f"Bundles[2].Products[0] (Stockcode {rows[2]['Stockcode']}): Price 'cheap' is not a number"
    )
    assert "wrong check digit" in reasons[3]
    assert reasons[4] == (
        "no row of the listing answer could be read: Bundles[0].Products[0]: missing Stockcode"
    )
    skus = skus_of(engine)
    assert len(skus) == 34  # the page's 34 readable rows, one of them (line 4) again
    assert skus[("woolworths", "144607")][1] == STRAWBERRIES  # line 3's barcode stays
    assert f"{name}: 4 lines quarantined, 1 barcodes rejected" in result.output


def test_analyze_jsonl_reads_woolworths_files_rows_skips_and_unknown_fields(
    tmp_path: Path, answer: dict[str, Any]
) -> None:
    page = copy.deepcopy(answer)
    page["Bundles"][0]["Products"][0]["IsSponsoredAd"] = True
    page["Bundles"][1]["Products"][0] = 42
    path = write_jsonl(
        tmp_path / "woolworths_check.jsonl",
        [page, {"sku": 1, "Barcode": BANANAS}, {"Stockcode": {}}, "not json"],
    )
    result = run_loader("sqlite://", "analyze-jsonl", str(path), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["lines"], report["importable"], report["skipped_rows"]) == (4, 35, 1)
    assert report["skipped_by_reason"] == {"sponsored": 1}
    assert report["company_from_file_name"] == "woolworths"
    assert report["unknown_fields"] == [{"field": "Barcode", "did_you_mean": "barcode"}]
    assert report["bad_lines"] == 3
    assert report["bad_reasons"]["a product row must be an object, not int"] == 1
    assert {e["line"] for e in report["bad_examples"]} == {1, 3, 4}
    table = run_loader("sqlite://", "analyze-jsonl", str(path))
    assert table.exit_code == 0, table.output
    assert "Skipped rows" in table.output
    assert "Fields the loader does not know (ignored)" in table.output
    assert any(line.split() == ["Barcode", "barcode"] for line in table.output.splitlines())


# -- the reading itself (no database) -------------------------------------------------------


def test_a_whole_answer_gives_every_product_line_with_its_place(answer: dict[str, Any]) -> None:
    read = LineReader("woolworths.jsonl").read(json.dumps(answer))
    assert isinstance(read, LineRows)
    assert [place for place, _ in read.lines] == [f"Bundles[{n}].Products[0]" for n in range(36)]
    assert [line.sku for _, line in read.lines] == [
        str(row["Stockcode"]) for row in sample_rows(answer)
    ]
    assert (read.skipped, read.errors) == ([], [])
    with pytest.raises(LineError, match="a line of 36 product rows"):
        parse_line(json.dumps(answer))  # one line, one product: not this one


@pytest.mark.parametrize(
    ("field", "meant"),
    [
        ("Barcode", "barcode"),
        ("WasPrice", "was_price"),
        ("unit-price", "unit_price"),
        ("Stockcode", "sku"),
        ("storeId", "store_id"),
        ("barcdoe", "barcode"),
        ("Colour", None),
    ],
)
def test_an_unknown_field_is_matched_to_the_field_it_probably_meant(
    field: str, meant: str | None
) -> None:
    assert did_you_mean(field) == meant


def test_unknown_fields_are_gathered_once_however_many_lines_carry_them() -> None:
    reader = LineReader("woolworths.jsonl")
    for sku in range(1, 1000):
        reader.read(json.dumps({"sku": sku, "Name": "x"} if sku % 2 else {"sku": sku}))
    reader.read(json.dumps({"sku": 1, "Name": "x", "price": 1, "Price": 2}))
    assert reader.unknown_fields == {"Name": "name", "Price": "price"}


def test_hostile_field_names_are_reported_short_printable_and_bounded() -> None:
    reader = LineReader()
    reader.read(json.dumps({"sku": 1, "x" * 5000: 1, "a\x00b": 2}))
    reader.read(json.dumps({"sku": 1, **{f"f{n}": n for n in range(1000)}}))
    assert len(reader.unknown_fields) == 20
    assert all(len(name) <= 64 and name.isprintable() for name in reader.unknown_fields)
    assert "a\\x00b" in reader.unknown_fields


@pytest.mark.parametrize(
    ("name", "company"),
    [
        ("woolworths_store-1234_fruit-veg.jsonl", "woolworths"),
        ("retry-20261123T060000-abc123--woolworths_a.jsonl", "woolworths"),
        ("COLES_2026.jsonl", "coles"),
        ("colesworth.jsonl", None),
        ("coles-and-woolworths.jsonl", None),
        ("aldi_store-1.jsonl", None),
    ],
)
def test_the_company_a_file_name_names(name: str, company: str | None) -> None:
    assert company_from_filename(name) == company


ROW_FIELDS = (
    "Stockcode",
    "Barcode",
    "Name",
    "DisplayName",
    "PackageSize",
    "Price",
    "WasPrice",
    "CupPrice",
    "IsAvailable",
    "IsInStock",
    "UrlFriendlyName",
    "IsSponsoredAd",
    "IsMarketProduct",
    "store_id",
    "scraped_at",
)
ROWS = st.dictionaries(st.sampled_from(ROW_FIELDS), JSON_VALUES, max_size=8).map(
    lambda row: {"Stockcode": 1, **row}
)
ANSWERS = st.one_of(
    st.fixed_dictionaries({"Bundles": JSON_VALUES}),
    st.fixed_dictionaries(
        {"Bundles": st.lists(st.fixed_dictionaries({"Products": st.lists(ROWS | JSON_VALUES)}))}
    ),
)


@settings(max_examples=300, deadline=None)  # a loaded CI machine is not a fault
@given(ROWS | ANSWERS)
def test_any_woolworths_row_or_answer_reads_to_storable_lines_or_a_line_error(
    value: dict[str, Any],
) -> None:
    try:
        read = LineReader("coles_store-0584.jsonl").read(json.dumps(value))
    except LineError as exc:
        assert exc.reason
        return
    lines = [read] if isinstance(read, ProductLine) else [line for _, line in read.lines]
    for line in lines:
        assert line.company == "woolworths"
        assert line.store_id != "0584"  # a Coles store is never a Woolworths one
        assert_fits_the_database(line)


def test_the_coles_barcode_crawl_never_takes_woolworths_skus_as_its_own(
    tmp_path: Path, answer: dict[str, Any]
) -> None:
    root = tmp_path / "barcode_enrichment_inbox"
    root.mkdir()
    write_jsonl(root / "woolworths_to-check.jsonl", [{"sku": 133211}, answer, {"sku": 5}])
    job = EnrichmentInbox(root).claim_next()
    assert job is not None
    assert job.skus == {}
    assert job.quarantined == 3
    (records,) = [path.read_text().splitlines() for path in (root / "quarantine").iterdir()]
    assert {json.loads(r)["reason"] for r in records} == {
        "company 'woolworths' is not crawled here"
    }


def test_unknown_fields_of_a_file_read_ahead_of_its_turn_are_still_reported(
    engine: Engine, inbox: Inbox
) -> None:
    write_jsonl(inbox.root / "coles_store-0584_a.jsonl", [{"sku": n} for n in range(1, 2000)])
    write_jsonl(inbox.root / "woolworths_b.jsonl", [{"sku": "W1", "Barcode": BANANAS}])
    result = update(engine, inbox)
    assert "woolworths_b.jsonl: fields the loader does not know, ignored: Barcode" in result.output
    files = {f["name"]: f for f in last_import_run(engine)["files"]}
    assert files["woolworths_b.jsonl"]["unknown_fields"] == {"Barcode": "barcode"}
    assert files["coles_store-0584_a.jsonl"]["unknown_fields"] == {}
