"""`scrapy crawl coles_products` against the replica site, and its listing parsing on the real
samples.

The replica runs with small listing pages (5 rows, 3 pages at most: a cap of 15 products) so
that many categories are too big to list whole and the crawl must walk their sub-categories,
as it must for Coles' biggest departments (48 rows x 104 pages).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import func, select

from colesbarcodes.db.catalog import apply_lines
from colesbarcodes.db.engine import make_engine, migrate, session_factory
from colesbarcodes.db.models import CompanySku, StorePrice
from colesbarcodes.feeds.storage import AtomicFileFeedStorage
from colesbarcodes.feeds.store_walk import StoreWalk, parse_stores
from colesbarcodes.inbox.lines import parse_line, parse_object, store_from_filename
from colesbarcodes.replica.catalogue import Catalogue
from colesbarcodes.replica.categories import PROMO_GROUPS
from colesbarcodes.replica.process import ReplicaProcess
from colesbarcodes.site.coles import (
    listing_line,
    listing_plan,
    parse_category_tree,
    parse_listing,
)
from tests.helpers import FAST_CRAWL, PROJECT, dump, import_published, write_jsonl

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

PRODUCTS = 400
SEED = 3
CATALOGUE = Catalogue.generate(PRODUCTS, seed=SEED)
ACTIVE = {p.sku for p in CATALOGUE if p.status == "active"}
PAGE_SIZE, MAX_PAGES = 5, 3
CAP = PAGE_SIZE * MAX_PAGES
SMALL_PAGES = [
    "--config",
    json.dumps({"listing_page_size": PAGE_SIZE, "listing_max_pages": MAX_PAGES}),
]
CAP_SETTINGS = [
    "-s",
    f"COLES_LISTING_PAGE_SIZE={PAGE_SIZE}",
    "-s",
    f"COLES_LISTING_MAX_PAGES={MAX_PAGES}",
]
LINE_KEYS = {
    "company",
    "store_id",
    "sku",
    "name",
    "brand",
    "size",
    "price",
    "was_price",
    "unit_price",
    "available",
    "url",
    "scraped_at",
}


@dataclass
class ListingCrawl:
    returncode: int
    stats: dict[str, Any]
    log: str
    inbox: Path
    site_stats: dict[str, Any] = field(default_factory=dict)


def listing_command(inbox: Path, base_url: str, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "scrapy",
        "crawl",
        "coles_products",
        "-a",
        f"inbox={inbox}",
        "-s",
        f"COLES_BASE_URL={base_url}",
        *FAST_CRAWL,
        *CAP_SETTINGS,
        *args,
    ]


def listing_env(work: Path, stats_file: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{work / 'crawl.sqlite3'}",  # the run ledger's, not ours
        "COLES_STATS_FILE": str(stats_file),
        "COLES_ENRICHMENT_INBOX": str(work / "barcode_enrichment_inbox"),
        **extra,
    }


def run_listing(work: Path, base_url: str, *args: str, timeout: float = 240) -> ListingCrawl:
    """A real ``scrapy crawl coles_products`` in a subprocess, from the project folder."""
    work.mkdir(parents=True, exist_ok=True)  # the database's and the stats file's folder
    inbox = work / "product_inbox"
    stats_file = work / f"stats-{uuid.uuid4().hex[:6]}.json"
    proc = subprocess.run(
        listing_command(inbox, base_url, *args),
        cwd=PROJECT,
        env=listing_env(work, stats_file),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    stats = json.loads(stats_file.read_text()) if stats_file.exists() else {}
    return ListingCrawl(proc.returncode, stats, proc.stdout + proc.stderr, inbox)


def read_files(inbox: Path) -> dict[str, list[dict[str, Any]]]:
    """Lines of every published file, by the store its file name names."""
    found: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(inbox.glob("*.jsonl")):
        store = store_from_filename(path.name)
        assert store is not None, path.name
        found.setdefault(store, []).extend(
            json.loads(line) for line in path.read_text().split("\n") if line
        )
    return found


@pytest.fixture(scope="module")
def small_replica() -> Iterator[ReplicaProcess]:
    with ReplicaProcess(products=PRODUCTS, seed=SEED, args=SMALL_PAGES) as site:
        yield site


@pytest.fixture(scope="module")
def two_stores(
    small_replica: ReplicaProcess, tmp_path_factory: pytest.TempPathFactory
) -> ListingCrawl:
    """One complete crawl of two stores, shared by the tests that only read its results."""
    small_replica.reset_stats()
    result = run_listing(
        tmp_path_factory.mktemp("two_stores"), small_replica.url, "-a", "stores=0584,601"
    )
    result.site_stats = small_replica.stats()
    assert result.returncode == 0, result.log[-4000:]
    return result


# -- the crawl ------------------------------------------------------------------------------


def test_every_product_of_each_store_appears_exactly_once(two_stores: ListingCrawl) -> None:
    files = sorted(p.name for p in two_stores.inbox.iterdir())
    assert len(files) == 2, files
    assert all(name.startswith(("coles_store-0584_", "coles_store-0601_")) for name in files)
    lines = read_files(two_stores.inbox)
    assert sorted(lines) == ["0584", "0601"]
    for store, rows in lines.items():
        assert Counter(row["sku"] for row in rows) == Counter(ACTIVE), store
        assert {row["store_id"] for row in rows} == {store}
    assert two_stores.stats["listing/products/0584"] == len(ACTIVE)
    assert two_stores.stats["listing/stores_complete"] == 2


def test_lines_have_the_canonical_shape_and_the_loader_accepts_each(
    two_stores: ListingCrawl,
) -> None:
    by_sku = {p.sku: p for p in CATALOGUE}
    for store, rows in read_files(two_stores.inbox).items():
        for row in rows:
            assert set(row) == LINE_KEYS
            line = parse_object(row)
            assert line is not None
            assert (line.company, line.store_id, line.sku) == ("coles", store, str(row["sku"]))
            product = by_sku[row["sku"]]
            assert (line.name, line.brand, line.size) == (product.name, product.brand, product.size)
            assert line.price == product.price
            assert line.was_price == (product.was or None)
            assert line.barcode is None  # listings carry none
            assert line.url is not None
            assert line.url.endswith(f"-{product.sku}")


def test_ads_and_promotional_repeats_are_left_out(two_stores: ListingCrawl) -> None:
    # the replica does list promotional groupings, repeating products of other categories
    assert CATALOGUE.in_category("down-down")
    assert CATALOGUE.in_category("bonus-prize-entries")
    asked = two_stores.site_stats["listings"]
    assert not [path for path in asked if path.split("/")[0] in PROMO_GROUPS]
    assert two_stores.stats["listing/groups_skipped"] == 2
    assert two_stores.stats["listing/ad_rows_dropped"] > 0  # every replica page carries ads
    for rows in read_files(two_stores.inbox).values():
        assert {row["sku"] for row in rows} <= ACTIVE  # no ad or cross-sell row became a line


def test_categories_larger_than_the_page_cap_are_walked_through_sub_categories(
    two_stores: ListingCrawl,
) -> None:
    departments = {
        root.path: {p.sku for p in CATALOGUE.in_category(root.path)}
        for root in CATALOGUE.tree.roots
        if root.seo_token not in PROMO_GROUPS
    }
    big = {path: skus for path, skus in departments.items() if len(skus) > CAP}
    assert len(big) >= 5  # e.g. pantry: far more than 3 pages of 5
    asked = two_stores.site_stats["listings"]
    assert max(int(page) for pages in asked.values() for page in pages) <= MAX_PAGES
    for rows in read_files(two_stores.inbox).values():
        listed = {row["sku"] for row in rows}
        for path, skus in big.items():
            assert skus <= listed, path
    assert two_stores.stats.get("listing/categories_truncated") is None
    # every page was asked for once per store: nothing wasted, nothing repeated
    assert all(count == 2 for pages in asked.values() for count in pages.values())


def test_the_category_tree_comes_from_graphql_without_the_fallback(
    two_stores: ListingCrawl,
) -> None:
    """The replica declares GetShopProductsMenu as the site does: the crawl's document is
    accepted, so the older browse.json route is never asked."""
    assert two_stores.stats["listing/categories_source"] == "graphql"
    assert "listing/categories_fallback" not in two_stores.stats
    assert two_stores.site_stats["by_operation"]["GetShopProductsMenu"] == 1
    assert two_stores.site_stats["by_kind"]["categories"] == 0  # browse.json


def test_the_home_page_is_read_once_for_the_build_id_and_the_key(
    two_stores: ListingCrawl,
) -> None:
    """The crawl's SiteSession reads the home page; the listing crawl takes its build id and
    GraphQL key from that one reading."""
    assert two_stores.site_stats["by_kind"]["home"] == 1
    assert two_stores.stats["coles/site/key_source"]


def test_a_home_page_without_build_id_ends_the_crawl_after_one_reading(
    small_replica: ReplicaProcess, tmp_path: Path
) -> None:
    """The key is there but no build id: nothing can be listed (exit status 4), and the page
    the session read is not asked for again."""
    small_replica.configure(breaks=["build-id-missing"])
    small_replica.reset_stats()
    try:
        result = run_listing(tmp_path, small_replica.url)
    finally:
        small_replica.configure(breaks=[])
    assert result.returncode == 4, result.log[-3000:]
    assert result.stats["finish_reason"] == "site_unusable: home page: __NEXT_DATA__ has no buildId"
    assert small_replica.stats()["by_kind"]["home"] == 1
    assert not list(result.inbox.glob("*.jsonl*"))


@pytest.mark.parametrize(
    ("mode", "refusal"),
    [
        ("categories-retyped", "Unknown type 'ProductCategory'."),
        ("categories-moved", "Cannot query field 'productCategories' on type 'Query'."),
    ],
)
def test_a_refused_category_document_is_the_finish_reason_not_the_fallbacks_404(
    small_replica: ReplicaProcess, tmp_path: Path, mode: str, refusal: str
) -> None:
    """GraphQL refuses the document whole and browse.json, gone from the 2026 site, answers
    404: the crawl ends naming the refusal first, as a site change (exit status 4)."""
    small_replica.configure(breaks=[mode])
    try:
        result = run_listing(tmp_path, small_replica.url)
    finally:
        small_replica.configure(breaks=[])
    assert result.returncode == 4, result.log[-3000:]
    reason = result.stats["finish_reason"]
    assert reason.startswith(f"site_changed: GraphQL refused GetShopProductsMenu: {refusal}")
    assert reason.endswith("; browse.json answered 404")
    assert result.stats["listing/categories_fallback"] == 1
    assert not list(result.inbox.glob("*.jsonl*"))
    assert "Traceback" not in result.log


def test_the_barcode_crawls_components_leave_the_listing_crawl_alone(
    two_stores: ListingCrawl,
) -> None:
    """Neither the PrefillMiddleware nor the BarcodeUpsertPipeline is enabled for this
    spider (it has no SKUs to skip and needs no database); the politeness parts are."""
    keys = set(two_stores.stats)
    # the site session (key, GraphQL) is shared by both spiders; the rest is the barcode crawl's
    shared = ("coles/site/", "coles/graphql/document_size")
    assert not {
        k for k in keys if k.startswith(("prefill/", "coles/")) and not k.startswith(shared)
    }
    assert "Enabled item pipelines:\n[]" in two_stores.log
    assert "colesbarcodes.middlewares.prefill.PrefillMiddleware" not in two_stores.log
    assert "colesbarcodes.middlewares.bot_check.BotCheckMiddleware" in two_stores.log
    assert "colesbarcodes.middlewares.retry_after.RetryAfterMiddleware" in two_stores.log


def test_the_files_import_with_no_quarantined_line(
    two_stores: ListingCrawl, database_url: str, tmp_path: Path
) -> None:
    result = import_published(two_stores.inbox, database_url, tmp_path)
    assert result.exit_code == 0, result.output
    engine = make_engine(database_url)
    try:
        state = dump(engine)
        assert state["quarantined"] == []
        assert [(name.split("_")[1], status) for name, status, *_ in state["files"]] == [
            ("store-0584", "done"),
            ("store-0601", "done"),
        ]
        with engine.connect() as conn:
            skus = conn.execute(select(func.count()).select_from(CompanySku)).scalar_one()
            prices = conn.execute(select(func.count()).select_from(StorePrice)).scalar_one()
    finally:
        engine.dispose()
    assert skus == len(ACTIVE)
    assert prices == 2 * len(ACTIVE)


# -- the site changing under the crawl --------------------------------------------------------


def wait_for(condition: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def listings_served(site: ReplicaProcess) -> int:
    return int(site.stats()["by_kind"]["listing"])


def test_a_stale_build_id_mid_crawl_is_recovered(tmp_path: Path) -> None:
    with ReplicaProcess(products=PRODUCTS, seed=SEED, args=SMALL_PAGES) as site:
        site.configure(delay_ms=20)
        stats_file = tmp_path / "stats.json"
        proc = subprocess.Popen(
            listing_command(tmp_path / "product_inbox", site.url, "-s", "CONCURRENT_REQUESTS=4"),
            cwd=PROJECT,
            env=listing_env(tmp_path, stats_file),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(lambda: listings_served(site) >= 15)
            site.configure(build_id="20261124.02_v4.25.0-replica", delay_ms=0)  # a deployment
            assert proc.wait(timeout=120) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
        served = site.stats()
    stats = json.loads(stats_file.read_text())
    assert stats["listing/build_id_changed"] == 1
    assert stats["listing/build_id_checks"] == 1  # the home page was read again once
    assert served["by_kind"]["home"] == 2
    assert stats["listing/stale_build_retries"] >= 1
    assert stats.get("listing/pages_failed") is None
    lines = read_files(tmp_path / "product_inbox")
    assert Counter(row["sku"] for row in lines["0584"]) == Counter(ACTIVE)


def test_the_file_appears_only_when_complete_and_a_killed_crawl_leaves_none(
    tmp_path: Path,
) -> None:
    inbox = tmp_path / "product_inbox"
    with ReplicaProcess(products=PRODUCTS, seed=SEED, args=SMALL_PAGES) as site:
        site.configure(delay_ms=40)
        proc = subprocess.Popen(
            listing_command(inbox, site.url, "-s", "CONCURRENT_REQUESTS=2"),
            cwd=PROJECT,
            env=listing_env(tmp_path, tmp_path / "killed.json"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(lambda: list(inbox.glob("*.jsonl.part")))  # items are being written
            for _ in range(20):  # a while of a crawl under way: never a .jsonl
                assert not list(inbox.glob("*.jsonl"))
                time.sleep(0.05)
            assert proc.poll() is None
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
        assert not list(inbox.glob("*.jsonl"))
        assert list(inbox.glob("*.jsonl.part"))  # left behind, never taken by the loader

        # stopped gracefully (Ctrl-C, scrapyd cancel): incomplete, so deleted, not published
        stopped = subprocess.Popen(
            listing_command(inbox, site.url, "-s", "CONCURRENT_REQUESTS=2"),
            cwd=PROJECT,
            env=listing_env(tmp_path, tmp_path / "stopped.json"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for(lambda: len(list(inbox.glob("*.jsonl.part"))) == 2)
        stopped.send_signal(signal.SIGINT)
        _, log = stopped.communicate(timeout=120)
        assert "its file will not be published" in log
        assert not list(inbox.glob("*.jsonl"))
        assert len(list(inbox.glob("*.jsonl.part"))) == 1  # only the killed crawl's

        site.configure(delay_ms=0)
        result = run_listing(tmp_path, site.url)
    assert result.returncode == 0, result.log[-3000:]
    published = list(inbox.glob("*.jsonl"))
    assert len(published) == 1
    assert Counter(row["sku"] for row in read_files(inbox)["0584"]) == Counter(ACTIVE)


def big_leaf_catalogue(path: Path) -> Path:
    """A catalogue whose breakfast-cereal aisle holds more than the page cap shows."""
    rows = [
        {"sku": 3_000_000 + i, "name": f"Cereal {i}", "price": 4.0, "category": "pantry/breakfast/breakfast-cereal"}
        for i in range(CAP + 5)
    ] + [
        {"sku": 3_100_000 + i, "name": f"Milk {i}", "price": 2.0, "category": "dairy-eggs-fridge/milk/full-cream-milk"}
        for i in range(7)
    ]  # fmt: skip
    return write_jsonl(path, rows)


def test_a_category_that_cannot_be_listed_whole_withholds_the_store_file(tmp_path: Path) -> None:
    catalogue = big_leaf_catalogue(tmp_path / "catalogue.jsonl")
    with ReplicaProcess(catalogue=catalogue, args=SMALL_PAGES) as site:
        result = run_listing(tmp_path / "strict", site.url)
        assert result.returncode == 3, result.log[-3000:]  # the monitors count the error
        assert result.stats["listing/categories_truncated"] == 1
        assert result.stats["listing/stores_incomplete"] == 1
        assert "pantry/breakfast/breakfast-cereal" in result.log
        assert not list(result.inbox.glob("*.jsonl*"))
        # an operator who accepts the loss says so
        lenient = run_listing(
            tmp_path / "lenient", site.url, "-s", "COLES_LISTING_MAX_FAILED_PAGES=1"
        )
    assert lenient.returncode == 0, lenient.log[-3000:]
    assert len(read_files(lenient.inbox)["0584"]) == CAP + 7  # all that the site shows


def test_a_listing_bigger_than_the_tree_said_is_split_when_read(
    small_replica: ReplicaProcess, tmp_path: Path
) -> None:
    """With a page size setting above the site's, the tree looks small enough to list whole:
    the first page's noOfResults (and pageSize) send the crawl down the sub-categories."""
    result = run_listing(tmp_path, small_replica.url, "-s", "COLES_LISTING_PAGE_SIZE=100")
    assert result.returncode == 0, result.log[-3000:]
    assert result.stats["listing/categories_split"] > 0
    assert Counter(row["sku"] for row in read_files(result.inbox)["0584"]) == Counter(ACTIVE)


def test_skus_without_a_known_barcode_can_be_queued_for_the_barcode_crawl(
    small_replica: ReplicaProcess, tmp_path: Path
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'crawl.sqlite3'}")
    migrate(engine)
    known = [p for p in CATALOGUE if p.sku in ACTIVE and p.expected_gtin][:40]
    lines = []
    for number, product in enumerate(known, 1):
        line = parse_object({"sku": product.sku, "barcode": product.expected_gtin})
        assert line is not None
        lines.append((number, line))
    with session_factory(engine).begin() as session:
        apply_lines(session, lines, source="known.jsonl")
    engine.dispose()
    result = run_listing(
        tmp_path,
        small_replica.url,
        "-a",
        "stores=0601,0584",
        "-s",
        "COLES_LISTING_QUEUE_MISSING_BARCODES=True",
    )
    assert result.returncode == 0, result.log[-3000:]
    queued = list((tmp_path / "barcode_enrichment_inbox").glob("listing-coles-*.jsonl"))
    assert len(queued) == 1
    rows = [json.loads(line) for line in queued[0].read_text().splitlines()]
    assert Counter(row["sku"] for row in rows) == Counter(ACTIVE - {p.sku for p in known})
    assert {row["store_id"] for row in rows} == {"0601"}  # the first store that lists them
    assert all(parse_line(json.dumps(row)) is not None for row in rows)


def test_a_scrapyd_job_fills_the_product_inbox(
    small_replica: ReplicaProcess, tmp_path: Path
) -> None:
    pytest.importorskip("scrapyd")
    from tests.test_scrapyd import PASSWORD, USER, Scrapyd, free_port

    home, inbox = tmp_path / "home", tmp_path / "product_inbox"
    home.mkdir()
    port = free_port()
    (home / ".scrapyd.conf").write_text(
        f"[scrapyd]\nbind_address = 127.0.0.1\nhttp_port = {port}\n"
        f"username = {USER}\npassword = {PASSWORD}\npoll_interval = 0.5\n"
        f"logs_dir = {tmp_path / 'logs'}\ndbs_dir = {tmp_path / 'dbs'}\n"
        f"eggs_dir = {tmp_path / 'eggs'}\n"
    )
    env = {
        **listing_env(tmp_path, tmp_path / "stats.json"),
        "HOME": str(home),
        "COLES_BASE_URL": small_replica.url,
        "COLES_PRODUCT_INBOX": str(inbox),
    }
    process = subprocess.Popen(  # the pid file out of the project folder other nodes share
        [sys.executable, "-m", "scrapyd", "--pidfile", str(tmp_path / "twistd.pid")],
        cwd=PROJECT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    daemon = Scrapyd(f"http://127.0.0.1:{port}")
    try:
        wait_for(lambda: _answers(daemon), timeout=30)
        assert "coles_products" in daemon.call("/listspiders.json?project=colesbarcodes")["spiders"]
        settings = [("setting", s) for s in FAST_CRAWL[1::2] + CAP_SETTINGS[1::2]]
        job = daemon.call(
            "/schedule.json",
            [
                ("project", "colesbarcodes"),
                ("spider", "coles_products"),
                ("stores", "0584,0601"),
                *settings,
            ],
        )["jobid"]
        wait_for(
            lambda: any(
                j["id"] == job
                for j in daemon.call("/listjobs.json?project=colesbarcodes")["finished"]
            ),
            timeout=180,
        )
    finally:
        process.terminate()
        process.wait(timeout=30)
    lines = read_files(inbox)
    assert sorted(lines) == ["0584", "0601"]
    assert all(Counter(row["sku"] for row in rows) == Counter(ACTIVE) for rows in lines.values())


def _answers(daemon: Any) -> bool:
    try:
        daemon.call("/daemonstatus.json")
    except OSError:
        return False
    return True


# -- the pieces, on the real samples ---------------------------------------------------------


def test_real_listing_pages_become_canonical_lines(samples: Path) -> None:
    for name, total, products, ads in (
        ("coles_listing_page_small.json", 749, 1, 1),
        ("coles_listing_fruit-vegetables_1.json", 578, 48, 1),
    ):
        raw = json.loads((samples / name).read_bytes())["pageProps"]["searchResults"]["results"]
        page = parse_listing((samples / name).read_bytes(), "fruit-vegetables")
        assert (page.total, len(page.products), page.other_rows) == (total, products, ads)
        assert all(row["_type"] == "PRODUCT" for row in page.products)
        lines = [
            listing_line(row, "0584", "https://www.coles.com.au", "2026-11-24T06:00:00Z")
            for row in page.products
        ]
        assert all(line is not None and set(line) == LINE_KEYS for line in lines)
        parsed = [parse_object(line) for line in lines]
        raw_products = [row for row in raw if row.get("_type") == "PRODUCT"]
        for line, row in zip(parsed, raw_products, strict=True):
            assert line is not None
            assert line.sku == str(row["id"])
            pricing = row["pricing"] or {}  # null on the real site for some rows
            assert line.price == pricing.get("now")
            assert line.was_price == (pricing.get("was") or None)
            assert line.unit_price == (pricing.get("unit") or {}).get("price")
            assert line.available is row["availability"]
            assert line.store_id == "0584"
            # the loader reads the raw row the same way
            raw_line = parse_object({**row, "store_id": "0584"})
            assert raw_line is not None
            assert (line.name, line.brand, line.size, line.price, line.was_price) == (
                raw_line.name,
                raw_line.brand,
                raw_line.size,
                raw_line.price,
                raw_line.was_price,
            )
    fruit = parse_listing(
        (samples / "coles_listing_fruit-vegetables_1.json").read_bytes(), "fruit-vegetables"
    )
    assert fruit.page_size == 48
    assert "fruit-vegetables/fruit" in [child.path for child in fruit.children]
    first = listing_line(
        fruit.products[0], "0584", "https://www.coles.com.au", "2026-11-24T06:00:00Z"
    )
    assert first is not None
    assert first["url"] == "https://www.coles.com.au/product/coles-bananas-mini-pack-750g-2511791"
    assert (first["sku"], first["price"], first["available"]) == (2511791, 4.5, False)


def test_the_real_category_tree_gives_the_listing_plan(samples: Path) -> None:
    tree = parse_category_tree((samples / "coles_browse_categories.json").read_bytes())
    assert len(tree) == 16
    pantry = next(c for c in tree if c.path == "pantry")
    assert pantry.product_count == 8049  # more than 48 x 104 = 4,992: too big to list whole
    listed, skipped = listing_plan(tree, frozenset(PROMO_GROUPS), 48 * 104)
    assert [c.path for c in skipped] == ["down-down", "bonus-prize-entries"]
    paths = [c.path for c in listed]
    assert "pantry" not in paths
    assert [p for p in paths if p.startswith("pantry/")] == [c.path for c in pantry.children]
    assert "health-beauty" in paths  # 4,889: listed whole
    assert all((c.product_count or 0) <= 48 * 104 for c in listed)


def test_odd_rows_never_make_lines_the_loader_refuses() -> None:
    rows: list[dict[str, Any]] = [
        {"_type": "PRODUCT", "id": "0012345", "name": "x" * 5000, "pricing": {"now": "$3.50", "was": 0}},
        {"_type": "PRODUCT", "id": 7, "name": 42, "brand": ["no"], "pricing": {"now": -1, "was": float("nan"), "unit": "odd"}},
        {"_type": "PRODUCT", "id": 8, "pricing": None, "availability": "yes"},
    ]  # fmt: skip
    for row in rows:
        line = listing_line(row, "0584", "https://www.coles.com.au", "2026-11-24T06:00:00Z")
        assert line is not None
        assert parse_object(line) is not None
    assert listing_line({"id": True}, "0584", "", "") is None
    assert listing_line({"id": -4}, "0584", "", "") is None
    assert listing_line({"name": "no id"}, "0584", "", "") is None


def test_store_arguments() -> None:
    assert parse_stores("584, 0601 0584") == ["0584", "0601"]
    with pytest.raises(ValueError):
        parse_stores("0584,../x")
    with pytest.raises(ValueError):
        parse_stores(" , ")


def test_a_store_walk_is_complete_only_when_every_page_was_answered() -> None:
    walk = StoreWalk("0584")
    assert walk.problem(0) is not None  # not started
    walk.scheduled = True
    walk.pending = 2
    assert "never answered" in (walk.problem(0) or "")
    walk.pending = 0
    assert walk.problem(0) is None
    walk.failed = 1
    assert "1 listing pages failed" in (walk.problem(0) or "")
    assert walk.problem(1) is None


def test_the_atomic_feed_never_replaces_or_shares_a_file(tmp_path: Path) -> None:
    target = tmp_path / "coles_store-0584_x.jsonl"
    uri = "atomicfile" + target.as_uri().removeprefix("file")
    target.write_text("older\n")
    first, second = AtomicFileFeedStorage(uri), AtomicFileFeedStorage(uri)
    files = [first.open(None), second.open(None)]  # type: ignore[arg-type]
    assert sorted(p.name for p in tmp_path.glob("*.part")) == [
        "coles_store-0584_x-2.jsonl.part",
        "coles_store-0584_x-3.jsonl.part",
    ]
    assert not list(tmp_path.glob("*-[23].jsonl"))  # nothing published while written
    for number, (storage, file) in enumerate(zip((first, second), files, strict=True)):
        file.write(b'{"sku": %d}\n' % number)
        storage.store(file)
    assert target.read_text() == "older\n"
    assert (tmp_path / "coles_store-0584_x-2.jsonl").read_text() == '{"sku": 0}\n'
    assert (tmp_path / "coles_store-0584_x-3.jsonl").read_text() == '{"sku": 1}\n'
    assert store_from_filename("coles_store-0584_x-2.jsonl") == "0584"
    assert not list(tmp_path.glob("*.part"))
