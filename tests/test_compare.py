"""Both retailers side by side: ``coles-loader compare``, the report's "Both retailers"
section and the overlap of ``data-quality``.

Coles lines (two stores) and Woolworths lines (online prices) are imported by the real
loader, on SQLite and on PostgreSQL; what the commands print is read back (table, JSON,
CSV, the HTML page) and compared with what the files said.
"""

from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING, Any

import pytest
from parsel import Selector
from stdnum import ean

from tests.helpers import run_loader, write_jsonl

if TYPE_CHECKING:
    from pathlib import Path

    from colesbarcodes.inbox.claims import Inbox


def gtin(n: int) -> str:
    body = f"93{n:010d}"
    return body + ean.calc_check_digit(body)


MILK, TIMTAM, BREAD, JUICE, EGGS = (gtin(n) for n in range(1, 6))
BANANAS = "2000000000008"  # an in-store code (loose produce): never one product across retailers
SCRAPED = "2026-12-01T06:00:00Z"


def coles(store: str, sku: int, name: str, price: float | None, barcode: str) -> dict[str, Any]:
    return {
        "company": "coles",
        "store_id": store,
        "sku": sku,
        "name": name,
        "price": price,
        "barcode": barcode,
        "scraped_at": SCRAPED,
    }


def woolworths(sku: str, name: str, price: float | None, barcode: str) -> dict[str, Any]:
    return {
        "company": "woolworths",
        "store_id": "online",
        "sku": sku,
        "name": name,
        "price": price,
        "barcode": barcode,
        "scraped_at": SCRAPED,
    }


COLES_LINES = [
    coles("0584", 101, "Full Cream Milk 2L", 3.10, MILK),
    coles("0601", 101, "Full Cream Milk 2L", 3.30, MILK),
    coles("0584", 102, "Tim Tam Original", 4.50, TIMTAM),
    coles("0584", 103, "White Bread", 3.00, BREAD),  # Coles only
    coles("0584", 105, "Free Range Eggs", 6.00, EGGS),
    coles("0584", 200, "Bananas per kg", 4.00, BANANAS),
]
WOOLWORTHS_LINES = [
    woolworths("133211", "Full Cream Milk 2L", 2.90, MILK),
    woolworths("133212", "Tim Tam Original", 5.50, TIMTAM),
    woolworths("133214", "Orange Juice", 4.20, JUICE),  # Woolworths only
    woolworths("133215", "Free Range Eggs", None, EGGS),  # sold by both, no online price
    woolworths("133200", "Bananas per kg", 3.00, BANANAS),
]
# What the files say, largest absolute difference first (Coles' price minus Woolworths').
EXPECTED = [
    (TIMTAM, "0584", 102, 4.50, "133212", 5.50, -1.00),
    (MILK, "0601", 101, 3.30, "133211", 2.90, 0.40),
    (MILK, "0584", 101, 3.10, "133211", 2.90, 0.20),
]


def import_files(url: str, inbox: Inbox, files: dict[str, list[dict[str, Any]]]) -> None:
    for name, lines in files.items():
        write_jsonl(inbox.root / name, lines)
    result = run_loader(
        url, "update", "--products", "--once", "--no-progress", "--inbox", str(inbox.root)
    )
    assert result.exit_code == 0, result.output


@pytest.fixture
def both(database_url: str, inbox: Inbox) -> str:
    """A database with the Coles and the Woolworths lines imported."""
    import_files(
        database_url,
        inbox,
        {"coles_2026-12-01.jsonl": COLES_LINES, "woolworths_2026-12-01.jsonl": WOOLWORTHS_LINES},
    )
    return database_url


def loader_json(url: str, *args: str) -> Any:
    result = run_loader(url, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def pairs(result: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The rows of ``compare --json`` as tuples shaped like EXPECTED."""
    shaped = []
    for row in result["rows"]:
        first, second = row["prices"]
        assert first["company"] == "coles"
        assert (second["company"], second["store_id"]) == ("woolworths", "online")
        shaped.append(
            (
                row["gtin"],
                first["store_id"],
                first["sku"],
                first["price"],
                second["sku"],
                second["price"],
                row["difference"],
            )
        )
    return shaped


def test_compare_lists_each_coles_store_against_the_woolworths_online_price(both: str) -> None:
    result = loader_json(both, "compare")
    assert result["retailers"] == ["coles", "woolworths"]
    assert result["products"] == 3  # milk, Tim Tam and eggs (eggs without an online price)
    assert result["pairings"] == len(EXPECTED)
    assert pairs(result) == EXPECTED
    assert [r["name"] for r in result["rows"]] == [
        "Tim Tam Original",
        "Full Cream Milk 2L",
        "Full Cream Milk 2L",
    ]


def test_compare_prints_a_table_largest_difference_first(both: str) -> None:
    result = run_loader(both, "compare")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("name"))
    assert lines[header].split() == [
        "name",
        "gtin",
        "coles_sku",
        "coles_store",
        "coles_price",
        "woolworths_sku",
        "woolworths_store",
        "woolworths_price",
        "difference",
    ]
    rows = lines[header + 2 : header + 2 + len(EXPECTED)]
    for line, (code, store, sku, price, w_sku, w_price, difference) in zip(
        rows, EXPECTED, strict=True
    ):
        assert line.split()[-8:] == [
            code,
            str(sku),
            store,
            f"{price:.2f}",
            w_sku,
            "online",
            f"{w_price:.2f}",
            f"{difference:.2f}",
        ]
    assert "3 of 3 pairings shown; 3 products with a global GTIN sold by both" in result.stdout


def test_compare_csv_parses_back_to_the_same_pairings(both: str) -> None:
    result = run_loader(both, "compare", "--csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [
        (
            r["gtin"],
            r["coles_store"],
            int(r["coles_sku"]),
            float(r["coles_price"]),
            r["woolworths_sku"],
            float(r["woolworths_price"]),
            float(r["difference"]),
        )
        for r in rows
    ] == EXPECTED
    assert all(r["woolworths_store"] == "online" and r["coles_last_seen"] for r in rows)
    assert rows[0]["name"] == "Tim Tam Original"


def test_compare_keeps_the_stores_asked_for(both: str) -> None:
    at_0584 = [p for p in EXPECTED if p[1] == "0584"]
    assert pairs(loader_json(both, "compare", "--store", "0584")) == at_0584
    assert pairs(loader_json(both, "compare", "--store", "584")) == at_0584  # Coles' padding
    # Woolworths' online store keeps every Coles store; both named: that pairing only
    assert pairs(loader_json(both, "compare", "--store", "online")) == EXPECTED
    two = loader_json(both, "compare", "--store", "0601", "--store", "online")
    assert pairs(two) == [p for p in EXPECTED if p[1] == "0601"]
    unknown = run_loader(both, "compare", "--store", "9999")
    assert unknown.exit_code == 1
    assert "no store '9999' of coles or woolworths in the database" in unknown.output
    assert "Traceback" not in unknown.output


def test_compare_min_difference_counts_either_way_and_to_the_cent(both: str) -> None:
    # 3.30 - 2.90 is 0.3999... in floating point: still a 40-cent difference
    result = loader_json(both, "compare", "--min-difference", "0.40")
    assert pairs(result) == EXPECTED[:2]
    assert result["pairings"] == 2
    assert pairs(loader_json(both, "compare", "--min-difference", "1")) == EXPECTED[:1]
    none = run_loader(both, "compare", "--min-difference", "5")
    assert none.exit_code == 0, none.output
    assert "3 products are sold by both coles and woolworths, but no pairing" in none.output


def test_compare_limit_per_product_and_retailer_order(both: str) -> None:
    limited = loader_json(both, "compare", "--limit", "1")
    assert pairs(limited) == EXPECTED[:1]
    assert limited["pairings"] == 3
    per_product = loader_json(both, "compare", "--per-product")
    assert pairs(per_product) == EXPECTED[:2]  # milk at its largest difference, 0601
    assert [r["pairings"] for r in per_product["rows"]] == [1, 2]
    swapped = loader_json(both, "compare", "--retailers", "woolworths,coles")
    assert [(r["prices"][0]["company"], r["difference"]) for r in swapped["rows"]] == [
        ("woolworths", -p[-1]) for p in EXPECTED
    ]


def test_in_store_codes_never_pair(both: str) -> None:
    every = loader_json(both, "compare", "--limit", "0")
    assert BANANAS not in {r["gtin"] for r in every["rows"]}
    assert {r["name"] for r in every["rows"]}.isdisjoint({"Bananas per kg"})
    overlap = {o["company"]: o for o in loader_json(both, "data-quality")["overlap"]}
    # Bananas are a SKU of each retailer, but their in-store code makes no shared product
    assert overlap["coles"] == {
        "company": "coles",
        "skus": 5,
        "with_global_gtin": 4,
        "also_sold_by_other": 3,
        "also_sold_pct": 75.0,
    }
    assert overlap["woolworths"] == {
        "company": "woolworths",
        "skus": 5,
        "with_global_gtin": 4,
        "also_sold_by_other": 3,
        "also_sold_pct": 75.0,
    }


def test_data_quality_table_shows_the_overlap_per_retailer(both: str) -> None:
    result = run_loader(both, "data-quality")
    assert result.exit_code == 0, result.output
    text = result.stdout
    section = text[text.index("Both retailers") :].splitlines()
    assert section[1].split() == [
        "company",
        "skus",
        "with_global_gtin",
        "also_sold_by_other",
        "also_sold_pct",
    ]
    assert section[3].split() == ["coles", "5", "4", "3", "75.00"]
    assert section[4].split() == ["woolworths", "5", "4", "3", "75.00"]


def test_one_retailer_database_says_there_is_nothing_to_compare(
    database_url: str, inbox: Inbox, tmp_path: Path
) -> None:
    import_files(database_url, inbox, {"coles_2026-12-01.jsonl": COLES_LINES})
    table = run_loader(database_url, "compare")
    assert table.exit_code == 0, table.output
    assert "Nothing to compare: the database holds coles SKUs but no woolworths SKU" in (
        table.stdout
    )
    empty = run_loader(database_url, "compare", "--retailers", "aldi,iga")
    assert "the database holds no aldi and no iga SKU" in empty.stdout
    as_json = run_loader(database_url, "compare", "--json")
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout) == {
        "retailers": ["coles", "woolworths"],
        "products": 0,
        "pairings": 0,
        "rows": [],
    }
    assert "Nothing to compare" in as_json.stderr
    as_csv = run_loader(database_url, "compare", "--csv")
    assert len(as_csv.stdout.splitlines()) == 1  # the header only
    assert as_csv.stdout.startswith("product_id,name,gtin,coles_sku,")
    assert "Nothing to compare" in as_csv.stderr
    out = tmp_path / "report.html"
    assert run_loader(database_url, "report", "--out", str(out)).exit_code == 0
    page = Selector(text=out.read_text())
    assert "0 products sold by both" in " ".join(page.css("#both h2 ::text").getall())
    assert page.css("p#table-both::text").get() == (
        "No product with a global GTIN has a price at both coles and woolworths."
    )


def test_report_shows_both_retailers_section(both: str, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    figures = loader_json(both, "report", "--out", str(out), "--differences", "1")
    section = figures["both_retailers"]
    assert section["products"] == 3
    assert section["pairings"] == 2  # products with a price at both: one row each
    assert pairs(section) == EXPECTED[:1]
    page = Selector(text=out.read_text())
    assert page.css("nav a[href='#both']::text").get() == "Both retailers"
    heading = " ".join(page.css("#both h2 ::text").getall())
    assert "3 products sold by both coles and woolworths" in heading
    cells = [
        " ".join(t.strip() for t in td.css("::text").getall() if t.strip())
        for td in page.css("#table-both tbody tr")[0].css("td")
    ]
    assert cells[1:] == [
        "Tim Tam Original",
        TIMTAM,
        "102",
        "0584",
        "$4.50",
        "133212",
        "online",
        "$5.50",
        "-$1.00",
        "1",
    ]
    assert len(page.css("#table-both tbody tr")) == 1
    # the product links to its card below
    assert (
        page.css("#table-both a.pid::attr(href)").get()
        == f"#product-{section['rows'][0]['product_id']}"
    )


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        (["--min-difference", "-1"], "give dollars, 0 or more"),
        (["--min-difference", "nan"], "give dollars, 0 or more"),
        (["--min-difference", "abc"], "'abc' is not a valid float"),
        (["--retailers", "coles"], "is not two companies"),
        (["--retailers", "coles,COLES"], "names coles twice"),
        (["--retailers", "coles,woolworths,aldi"], "is not two companies"),
        (["--limit", "-1"], "-1 is not in the range x>=0"),
        (["--store", " "], "'--store': bad store_id ' '"),
        (["--store", ""], "'--store': empty store id"),
        (["--json", "--csv"], "--json and --csv cannot be given together"),
    ],
)
def test_compare_refuses_bad_options_with_one_line(
    tmp_path: Path, args: list[str], phrase: str
) -> None:
    result = run_loader(f"sqlite:///{tmp_path / 'db.sqlite3'}", "compare", *args)
    assert result.exit_code == 2, result.output
    assert phrase in result.output
    assert "Traceback" not in result.output
