"""`scrapy crawl woolworths_products` against the replica's Woolworths, and the pure readers of
Woolworths' tree, listing answers and block page on the real sample.

The replica derives its Woolworths products from the Coles replica's catalogue (same seed):
its departments hold up to some 150 products, so several need more than one page of 36.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from colesbarcodes.db.engine import make_engine
from colesbarcodes.gtin import parse_gtin
from colesbarcodes.inbox.lines import parse_object, store_from_filename
from colesbarcodes.replica.catalogue import Catalogue
from colesbarcodes.replica.process import ReplicaProcess
from colesbarcodes.replica.woolworths import (
    DEPARTMENTS,
    EVERYDAY_MARKET,
    FRONT_OF_STORE,
    WoolworthsCatalogue,
)
from colesbarcodes.site.woolworths import (
    ONLINE_STORE,
    Department,
    SiteFormatError,
    department_plan,
    is_block_page,
    listing_body,
    listing_line,
    listing_page_count,
    parse_category_tree,
    parse_listing,
    protection_kind,
)
from tests.helpers import FAST_CRAWL, PROJECT, dump, import_published

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.proxies import ForwardProxy

PRODUCTS, SEED = 1000, 3
COLES = Catalogue.generate(PRODUCTS, seed=SEED)
WOOLWORTHS = WoolworthsCatalogue.from_coles(COLES)
PANTRY = "1_39FD49C"
WALKED = [node for node, *_ in DEPARTMENTS if node not in (EVERYDAY_MARKET, FRONT_OF_STORE)]
SHELF = {node: [p.stockcode for p in WOOLWORTHS.shelf(node)] for node in WALKED}
MARKETPLACE = {p.stockcode for p in WOOLWORTHS.products.values() if p.marketplace}


@dataclass
class WoolworthsCrawl:
    returncode: int
    stats: dict[str, Any]
    log: str
    inbox: Path
    site_stats: dict[str, Any] = field(default_factory=dict)

    def lines(self) -> list[dict[str, Any]]:
        return [
            json.loads(line)
            for path in sorted(self.inbox.glob("*.jsonl"))
            for line in path.read_text().splitlines()
            if line
        ]


def run_crawl(work: Path, base_url: str, *args: str, timeout: float = 240) -> WoolworthsCrawl:
    """A real ``scrapy crawl woolworths_products`` in a subprocess, from the project folder."""
    work.mkdir(parents=True, exist_ok=True)
    inbox = work / "product_inbox"
    stats_file = work / f"stats-{uuid.uuid4().hex[:6]}.json"
    command = [sys.executable, "-m", "scrapy", "crawl", "woolworths_products"]
    command += ["-a", f"inbox={inbox}", *FAST_CRAWL, "-s", "COLES_BLOCK_BACKOFF=0.05", *args]
    env = {
        **os.environ,
        "WOOLWORTHS_BASE_URL": base_url,  # as a user sets it
        "DATABASE_URL": f"sqlite:///{work / 'crawl.sqlite3'}",  # the run ledger's
        "COLES_STATS_FILE": str(stats_file),
    }
    proc = subprocess.run(
        command, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    stats = json.loads(stats_file.read_text()) if stats_file.exists() else {}
    return WoolworthsCrawl(proc.returncode, stats, proc.stdout + proc.stderr, inbox)


@pytest.fixture(scope="module")
def replica() -> Iterator[ReplicaProcess]:
    with ReplicaProcess(products=PRODUCTS, seed=SEED) as site:
        yield site


@pytest.fixture
def site(replica: ReplicaProcess) -> Iterator[ReplicaProcess]:
    """The module's replica, its Woolworths switches restored after the test."""
    replica.woolworths_reset_stats()
    yield replica
    replica.woolworths_configure(blocked=False, block_clients=[], fail_departments=[FRONT_OF_STORE])


@pytest.fixture(scope="module")
def complete(replica: ReplicaProcess, tmp_path_factory: pytest.TempPathFactory) -> WoolworthsCrawl:
    """One complete crawl, shared by the tests that only read its results."""
    replica.woolworths_reset_stats()
    result = run_crawl(tmp_path_factory.mktemp("complete"), replica.woolworths_url)
    result.site_stats = replica.woolworths_stats()
    assert result.returncode == 0, result.log[-4000:]
    return result


# -- the crawl ------------------------------------------------------------------------------


def test_every_department_product_is_listed_exactly_once_in_one_online_file(
    complete: WoolworthsCrawl,
) -> None:
    files = list(complete.inbox.iterdir())
    assert len(files) == 1, files
    assert files[0].name.startswith("woolworths_store-online_")
    assert store_from_filename(files[0].name) == ONLINE_STORE
    lines = complete.lines()
    expected = Counter(code for codes in SHELF.values() for code in codes)
    assert Counter(line["sku"] for line in lines) == expected
    assert not MARKETPLACE & {line["sku"] for line in lines}
    assert complete.stats["listing/products/online"] == len(expected)
    assert complete.stats["listing/sponsored_rows_dropped"] > 0  # they were there, and left out


def test_lines_are_woolworths_online_prices_with_their_barcodes_and_import(
    complete: WoolworthsCrawl,
) -> None:
    shared = 0
    for row in complete.lines():
        line = parse_object(row)
        assert line is not None
        assert (line.company, line.store_id) == ("woolworths", "online")
        product = WOOLWORTHS.products[row["sku"]]
        assert line.name == product.name
        assert line.price == product.price
        assert row["barcode"] == product.barcode
        if product.coles_sku is not None:
            coles = COLES.products[product.coles_sku]
            assert line.barcode == parse_gtin(coles.expected_gtin)  # one product at both
            shared += 1
    assert shared > 100
    instore = [row for row in complete.lines() if (row["barcode"] or "").startswith("02")]
    assert instore, "fresh products carry in-store codes"


def test_the_file_imports_as_woolworths_online_prices_with_the_barcodes(
    complete: WoolworthsCrawl, database_url: str, tmp_path: Path
) -> None:
    result = import_published(complete.inbox, database_url, tmp_path)
    assert result.exit_code == 0, result.output
    engine = make_engine(database_url)
    try:
        state = dump(engine)
    finally:
        engine.dispose()
    assert state["quarantined"] == []
    lines = complete.lines()
    prices = {sku: price for (store, (company, sku), price, *_) in state["prices"]
              if (store, company) == (("woolworths", "online"), "woolworths")}  # fmt: skip
    assert prices == {str(line["sku"]): line["price"] for line in lines}
    barcodes = {
        dict(skus).get("woolworths"): barcode for skus, _, _, _, barcode, _ in state["products"]
    }
    shared = [line for line in lines if WOOLWORTHS.products[line["sku"]].coles_sku is not None]
    assert shared
    for line in shared:
        assert barcodes[str(line["sku"])] == line["barcode"]


def test_each_department_is_walked_to_the_page_its_total_ends_on_and_no_further(
    complete: WoolworthsCrawl,
) -> None:
    asked = complete.site_stats["listings"]
    assert sorted(asked) == sorted(WALKED)  # no specials, no marketplace, no Front of Store
    for node in WALKED:
        last = math.ceil(len(SHELF[node]) / 36)
        assert asked[node] == {str(page): 1 for page in range(1, last + 1)}, node
    assert any(len(pages) > 2 for pages in asked.values())  # several pages were walked
    listing_requests = sum(len(pages) for pages in asked.values())
    assert complete.site_stats["page_sizes"] == {"36": listing_requests}
    assert complete.site_stats["hide_marketplace"] == {"true": listing_requests}
    # cookies primed on the home page, and the site's own headers, on every listing request
    assert complete.site_stats["by_kind"]["ww_home"] == 1
    assert complete.site_stats["with_cookie"] == listing_requests
    assert complete.site_stats["from_site"] == listing_requests


def test_a_blocked_exit_is_left_for_the_other(
    site: ReplicaProcess, forward_proxies: list[ForwardProxy], tmp_path: Path
) -> None:
    blocked, accepted = forward_proxies
    site.woolworths_configure(block_clients=[blocked.exit_address])
    result = run_crawl(
        tmp_path, site.woolworths_url, "-s", f"COLES_PROXIES={blocked.url},{accepted.url}"
    )
    assert result.returncode == 0, result.log[-4000:]
    assert result.stats["exit/blocked"] >= 1
    assert result.stats["exit/rotated"] >= 1
    by_client = site.woolworths_stats()["by_client"]
    assert by_client[accepted.exit_address] > by_client[blocked.exit_address]
    assert Counter(line["sku"] for line in result.lines()) == Counter(
        code for codes in SHELF.values() for code in codes
    )


def test_a_block_on_every_exit_ends_the_crawl_blocked_with_status_5_and_no_file(
    site: ReplicaProcess, tmp_path: Path
) -> None:
    site.woolworths_configure(blocked=True)
    result = run_crawl(tmp_path, site.woolworths_url, "-s", "COLES_BLOCK_MAX_RETRIES=1")
    assert result.returncode == 5, result.log[-4000:]
    assert result.stats["finish_reason"].startswith("blocked: ")
    assert "COLES_PROXIES" in result.stats["finish_reason"]
    assert "listing/products" not in result.stats  # never read as an empty listing
    assert not result.inbox.exists() or not list(result.inbox.iterdir())


def test_a_department_the_site_refuses_withholds_the_file_but_the_walk_goes_on(
    site: ReplicaProcess, tmp_path: Path
) -> None:
    site.woolworths_configure(fail_departments=[PANTRY])
    result = run_crawl(tmp_path, site.woolworths_url)
    assert result.returncode == 3, result.log[-4000:]  # an error was logged: monitors fail
    assert result.stats["listing/departments_failed"] == 1
    assert "Pantry (1_39FD49C) page 1 failed: HTTP 500 after retries" in result.log
    assert "its file will not be published" in result.log
    assert "WOOLWORTHS_MAX_FAILED_PAGES=0" in result.log
    assert result.stats["listing/products"] == sum(
        len(codes) for node, codes in SHELF.items() if node != PANTRY
    )  # every other department was still walked
    assert not list(result.inbox.glob("*.jsonl*"))


def test_a_tolerated_refused_department_publishes_the_rest(
    site: ReplicaProcess, tmp_path: Path
) -> None:
    site.woolworths_configure(fail_departments=[PANTRY])
    result = run_crawl(tmp_path, site.woolworths_url, "-s", "WOOLWORTHS_MAX_FAILED_PAGES=1")
    assert result.returncode == 0, result.log[-4000:]
    assert result.stats["listing/departments_failed"] == 1
    listed = {line["sku"] for line in result.lines()}
    assert listed == {code for node, codes in SHELF.items() if node != PANTRY for code in codes}


@pytest.mark.parametrize(
    ("base_url", "args", "phrase"),
    [
        ("ftp://www.woolworths.com.au", (), "WOOLWORTHS_BASE_URL"),
        ("", ("-s", "WOOLWORTHS_MAX_FAILED_PAGES=-1"), "WOOLWORTHS_MAX_FAILED_PAGES must be"),
        ("", ("-s", "CRAWL_RETAILER=aldi"), "CRAWL_RETAILER"),
        ("", ("-a", "stores=0584"), "unknown argument -a stores"),
    ],
    ids=["base-url", "max-failed", "retailer", "argument"],
)
def test_a_value_the_crawl_cannot_use_is_bad_configuration_in_one_line(
    tmp_path: Path, base_url: str, args: tuple[str, ...], phrase: str
) -> None:
    result = run_crawl(tmp_path, base_url or "http://127.0.0.1:9", *args)
    assert result.returncode == 2, result.log[-4000:]
    assert phrase in result.log
    assert "Traceback" not in result.log
    assert not result.inbox.exists() or not list(result.inbox.iterdir())


# -- the pure readers, on the real sample ---------------------------------------------------


def test_the_real_listing_answer_gives_its_total_and_36_rows_that_import(samples: Path) -> None:
    body = (samples / "woolworths_listing_category_1.json").read_bytes()
    answer = parse_listing(body)
    assert (answer.total, len(answer.rows), answer.sponsored, answer.marketplace) == (470, 36, 0, 0)
    assert listing_page_count(answer.total) == 14
    lines = [
        listing_line(row, "https://www.woolworths.com.au", "2026-12-06T00:00:00Z")
        for row in answer.rows
    ]
    first = lines[0]
    assert first is not None
    assert (first["sku"], first["barcode"], first["name"]) == (
        133211,
        "0264011000002",
        "Cavendish Bananas",
    )
    assert (
        first["url"] == "https://www.woolworths.com.au/shop/productdetails/133211/cavendish-bananas"
    )
    for line in lines:
        assert line is not None
        parsed = parse_object(line)
        assert parsed is not None and parsed.barcode_error is None
        assert (parsed.company, parsed.store_id) == ("woolworths", "online")


def test_sponsored_and_marketplace_rows_are_counted_not_kept(samples: Path) -> None:
    data = json.loads((samples / "woolworths_listing_category_1.json").read_bytes())
    data["Bundles"][0]["Products"][0]["IsSponsoredAd"] = True
    data["Bundles"][1]["Products"][0]["IsMarketProduct"] = True
    answer = parse_listing(json.dumps(data).encode())
    assert (len(answer.rows), answer.sponsored, answer.marketplace) == (34, 1, 1)


def _rows_read_whole(data: dict[str, Any]) -> list[dict[str, Any] | None]:
    """What every row gives when the whole answer is decoded (no field skipped)."""
    return [
        listing_line(row, "https://w", "2026-12-06T00:00:00Z")
        for bundle in data["Bundles"]
        for row in bundle["Products"]
        if isinstance(row, dict) and not row.get("IsSponsoredAd") and not row.get("IsMarketProduct")
    ]


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda data: None, id="as it comes"),
        pytest.param(
            lambda data: data["Bundles"][2]["Products"].append("oops"), id="a row is no object"
        ),
        pytest.param(
            lambda data: data["Bundles"][0]["Products"][0].pop("Name"), id="a row lacks Name"
        ),
        pytest.param(
            lambda data: data["Bundles"][3]["Products"][0].update(Stockcode=10**30),
            id="a huge Stockcode",
        ),
        pytest.param(
            lambda data: data["Bundles"][4]["Products"][0].update(Price="3.5"), id="a price as text"
        ),
    ],
)
def test_reading_only_the_fields_used_gives_what_the_whole_answer_gives(
    samples: Path, mutate: Any
) -> None:
    data = json.loads((samples / "woolworths_listing_category_1.json").read_bytes())
    mutate(data)
    answer = parse_listing(json.dumps(data).encode())
    lines = [listing_line(row, "https://w", "2026-12-06T00:00:00Z") for row in answer.rows]
    assert lines == _rows_read_whole(data)
    assert answer.malformed == sum(
        not isinstance(row, dict) for bundle in data["Bundles"] for row in bundle["Products"]
    )


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"Success": False}, "Success: false"),
        ({"TotalRecordCount": None}, "TotalRecordCount"),
        ({"Bundles": None}, "Bundles"),
    ],
)
def test_an_answer_without_its_parts_is_a_format_error_never_an_empty_listing(
    samples: Path, change: dict[str, Any], why: str
) -> None:
    data = json.loads((samples / "woolworths_listing_category_1.json").read_bytes())
    for key, value in change.items():
        if value is None:
            del data[key]
        else:
            data[key] = value
    with pytest.raises(SiteFormatError, match=why):
        parse_listing(json.dumps(data).encode())
    with pytest.raises(SiteFormatError, match="not JSON"):
        parse_listing(b"<html>Access Denied</html>")


def _node(node_id: str, slug: str, **extra: Any) -> dict[str, Any]:
    return {"NodeId": node_id, "Description": slug.title(), "UrlFriendlyName": slug, **extra}


def test_the_tree_gives_departments_without_specials_and_the_plan_skips_the_marketplace() -> None:
    tree = {
        "Categories": [
            _node("specialsgroup", "specials", IsSpecial=True, DisplayOrder=0),
            _node(
                "1-E5BEE36E",
                "fruit-veg",
                DisplayOrder=2,
                ParentNodeId="1-4A3B264C",
                IsSpecial=False,
                Children=[_node("1-E5BEE36E_SPECIALS", "fruit-veg-specials", IsSpecial=True)],
            ),
            _node("1_DEB537E", "bakery", DisplayOrder=1, IsSpecial=False),
            _node("1_A363395", "everyday-market", DisplayOrder=3, IsSpecial=False),
            _node("1_DEA3ED5", "home-lifestyle", DisplayOrder=4, IsSpecial=False),
        ]
    }
    departments = parse_category_tree(json.dumps(tree).encode())
    assert [d.node_id for d in departments] == ["1_DEB537E", "1-E5BEE36E", "1_A363395", "1_DEA3ED5"]
    listed, skipped = department_plan(departments, ["home-lifestyle"])
    assert [d.slug for d in listed] == ["bakery", "fruit-veg"]
    assert [d.slug for d in skipped] == ["everyday-market", "home-lifestyle"]
    with pytest.raises(SiteFormatError, match="Categories"):
        parse_category_tree(b'{"Message": "An error has occurred."}')


def test_the_listing_body_is_the_public_clients_with_36_rows_and_no_marketplace() -> None:
    body = json.loads(listing_body(Department("1_DEB537E", "Bakery", "bakery"), 3))
    assert (body["categoryId"], body["pageNumber"], body["pageSize"]) == ("1_DEB537E", 3, 36)
    assert body["isHideEverydayMarketProducts"] is True


AKAMAI_BLOCK = (
    b"<HTML><HEAD>\n<TITLE>Access Denied</TITLE>\n</HEAD><BODY>\n<H1>Access Denied</H1>\n \n"
    b"You don't have permission to access \"http&#58;&#47;&#47;www&#46;woolworths&#46;com&#46;au"
    b'&#47;apis&#47;ui&#47;browse&#47;category" on this server.<P>\nReference&#32;&#35;18&#46;'
    b"8f3c1002&#46;1765000000&#46;1a2b3c4d\n<P>https&#58;&#47;&#47;errors&#46;edgesuite&#46;net"
    b"&#47;18&#46;8f3c1002&#46;1765000000&#46;1a2b3c4d</P>\n</BODY>\n</HTML>\n"
)


def test_akamais_block_page_is_a_block_and_the_word_akamai_is_not(samples: Path) -> None:
    assert len(AKAMAI_BLOCK) < 600
    assert is_block_page(AKAMAI_BLOCK)
    assert protection_kind(AKAMAI_BLOCK) == "block"
    good = b'<html><link href="https://assets.woolworths.com.au.akamaized.net">akamai</html>'
    assert protection_kind(good) is None
    assert protection_kind((samples / "woolworths_listing_category_1.json").read_bytes()) is None
