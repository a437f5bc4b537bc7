"""``scrapy site-check`` says, in one command, which point of the site contract changed.

The verdicts are judged on the real samples first (pure functions), then the command runs
for real (a ``scrapy site-check`` subprocess) against the replica: in both layouts, with each
contract point broken on purpose (``--break``), behind the challenge and behind a block page.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from colesbarcodes.replica.catalogue import Catalogue
from colesbarcodes.replica.process import ReplicaProcess
from colesbarcodes.site.checks import (
    Answer,
    CheckResult,
    Status,
    check_batch,
    check_build_id,
    check_categories,
    check_home,
    check_key,
    check_listing,
    check_product,
    check_product_page,
    mask,
)
from tests.conftest import PROJECT, require

if TYPE_CHECKING:
    from pathlib import Path

    from tests.proxies import ForwardProxy

KEY = "0123456789abcdef0123456789abcdef"
PRODUCTS = 300
CATALOGUE = Catalogue.generate(PRODUCTS, seed=1)
# Two active products with valid barcodes: the SKUs the checks look up.
SKUS = [str(p.sku) for p in CATALOGUE if p.status == "active" and p.expected_gtin][:2]
CHECK_NAMES = [
    "home",
    "build_id",
    "key",
    "product",
    "batch",
    "categories",
    "listing",
    "product_page",
]
FAST = ["-s", "DOWNLOAD_DELAY=0", "-s", "AUTOTHROTTLE_ENABLED=False"]


# -- the verdicts, on real samples -------------------------------------------------------------


def test_the_real_get_product_details_answer_passes_the_product_check(samples: Path) -> None:
    body = (samples / "coles_graphql_GetProductDetails.json").read_bytes()
    result, name = check_product(Answer(200, body), "1018067")
    assert result.status is Status.OK
    assert "GTIN" in result.seen and name == "Charged Strong Latte Iced Coffee"
    assert result.remedy == ""


def test_a_record_without_gtin_is_a_change_that_names_the_graphql_section() -> None:
    body = json.dumps({"data": {"product": {"id": 1, "name": "Milk", "gtin": None}}}).encode()
    result, _ = check_product(Answer(200, body), "1")
    assert result.status is Status.CHANGED
    assert "gtin is empty" in result.seen
    assert "docs/site.md, section GraphQL" in result.remedy


def test_a_refused_document_is_a_change_that_quotes_the_server() -> None:
    body = json.dumps(
        {"errors": [{"message": "Cannot query field 'product' on type 'Query'."}]}
    ).encode()
    result, _ = check_product(Answer(400, body), "1")
    assert result.status is Status.CHANGED
    assert "Cannot query field 'product'" in result.seen


def test_the_block_page_is_blocked_and_names_the_proxy_remedy(samples: Path) -> None:
    block = (samples / "incapsula_block_page.html").read_bytes()
    result = check_home(Answer(200, block), challenge_solved=False, exit_label="direct")
    assert result.status is Status.BLOCKED
    assert "COLES_PROXIES" in result.remedy


def test_a_challenge_still_there_is_blocked_and_names_the_browser(samples: Path) -> None:
    challenge = (samples / "coles_bot_check_page.html").read_bytes()
    result = check_home(Answer(200, challenge), challenge_solved=False, exit_label="direct")
    assert result.status is Status.BLOCKED
    assert "Chromium" in result.remedy


def test_the_2024_page_gives_its_key_from_next_data(samples: Path) -> None:
    result, config = check_key(
        (samples / "coles_product_page.html").read_bytes(), "https://www.coles.com.au/"
    )
    assert result.status is Status.OK and config is not None
    assert "__NEXT_DATA__.runtimeConfig" in result.seen


def test_the_category_tree_is_ok_from_either_source_and_changed_from_neither(
    samples: Path,
) -> None:
    route = Answer(200, (samples / "coles_browse_categories.json").read_bytes())
    refused = Answer(400, b'{"errors":[{"message":"Cannot query field \\"productCategories\\""}]}')
    result, tree = check_categories(refused, route)
    assert result.status is Status.OK and len(tree) >= 5
    assert "browse.json: " in result.seen and "GraphQL refused " in result.seen
    result, tree = check_categories(refused, Answer(404, b"Not found"))
    assert result.status is Status.CHANGED and tree == ()
    assert "section Categories" in result.remedy


def test_a_refused_category_document_is_named_before_the_routes_404() -> None:
    refused = Answer(
        400,
        json.dumps(
            {
                "errors": [
                    {
                        "message": "Unknown type 'ProductCategory'.",
                        "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"},
                    }
                ]
            }
        ).encode(),
    )
    result, tree = check_categories(refused, Answer(404, b"Not found"))
    assert result.status is Status.CHANGED and tree == ()
    assert result.seen == (
        "GraphQL refused GetShopProductsMenu: Unknown type 'ProductCategory'.; "
        "browse.json: HTTP 404"
    )


def test_a_batch_with_one_product_not_found_still_answers_both() -> None:
    body = json.dumps(
        {
            "data": {"p0": {"id": 1, "name": "A", "gtin": "9300000000007"}, "p1": None},
            "errors": [{"message": "Product not found", "path": ["p1"]}],
        }
    ).encode()
    result = check_batch(Answer(200, body), ["1", "2"])
    assert result.status is Status.OK, result.seen
    assert "2 of 2 answered" in result.seen


def test_the_product_page_is_information_whatever_it_carries(samples: Path) -> None:
    page = (samples / "coles_product_page_jsonld_2025.html").read_bytes()
    with_gtin = check_product_page(Answer(200, page), "8060378")
    gone = check_product_page(Answer(404, b"<html>Not found</html>"), "8060378")
    assert with_gtin.status is Status.OK and not with_gtin.required
    assert gone.status is Status.OK and "404" in gone.seen


BODIES = st.one_of(
    st.binary(max_size=300),
    st.sampled_from(
        [
            b"",
            b"<!DOCTYPE html><title>Maintenance</title>",
            b'{"data": null}',
            b'{"data": {"product": {"id": 1, "gtin": [1]}}}',
            b'{"data": {"menuItems": {"items": [{"seoToken": 5}]}}}',
            b'{"pageProps": {"searchResults": {"results": "x", "noOfResults": "7"}}}',
            b'{"errors": "boom"}',
            b'{"errors": [{"message": null, "path": "p0"}], "data": []}',
            b'<script id="__NEXT_DATA__" type="application/json">{"buildId": 7}</script>',
            b'<script type="application/ld+json">{"@type": "Product", "sku": []}</script>',
        ]
    ),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=10),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=12,
    ).map(lambda value: json.dumps(value).encode()),
)


@settings(max_examples=300, deadline=None)
@given(body=BODIES, status=st.sampled_from([200, 201, 204, 301, 400, 401, 404, 500]))
def test_no_answer_makes_a_check_raise(body: bytes, status: int) -> None:
    """Whatever the site answers, every check returns its row: site-check never prints a
    traceback, least of all when the site is changing."""
    answer = Answer(status=status, body=body, content_type="text/html")
    results: list[CheckResult] = [
        check_home(answer, False, "direct"),
        check_build_id(body)[0],
        check_key(body, "https://www.coles.com.au/")[0],
        check_product(answer, "1018067")[0],
        check_batch(answer, ["1018067", "8060378"]),
        check_categories(answer, answer)[0],
        check_listing(answer, "pantry"),
        check_product_page(answer, "8060378"),
    ]
    assert all(isinstance(result.status, Status) for result in results)


def test_masking_hides_the_key_and_proxy_credentials() -> None:
    body = f'{{"BFF_API_SUBSCRIPTION_KEY":"{KEY}","proxy":"crawler:pa55word"}}'.encode()
    masked = mask(body, [KEY, "crawler", "pa55word"])
    assert KEY.encode() not in masked and b"pa55word" not in masked
    assert masked.count(b"***") == 3


# -- the command against the replica ------------------------------------------------------------


@dataclass
class SiteCheckRun:
    returncode: int
    stdout: str
    stderr: str

    @property
    def rows(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = json.loads(self.stdout)
        return rows

    @property
    def status(self) -> dict[str, str]:
        return {row["check"]: row["status"] for row in self.rows}


def site_check(base_url: str, *args: str, timeout: float = 120) -> SiteCheckRun:
    command = [sys.executable, "-m", "scrapy", "site-check", "--base-url", base_url]
    command += [arg for sku in SKUS for arg in ("--sku", sku)]
    proc = subprocess.run(
        [*command, *FAST, *args],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return SiteCheckRun(proc.returncode, proc.stdout, proc.stderr)


def replica(*args: str, layout: str = "2026", challenge: bool = False) -> ReplicaProcess:
    return ReplicaProcess(
        products=PRODUCTS,
        seed=1,
        layout=layout,
        challenge=challenge,
        args=["--api-key", KEY, *args],
    )


@pytest.mark.parametrize("layout", ["2026", "2024"])
def test_every_check_is_ok_on_the_site_as_it_is_in_each_layout(layout: str) -> None:
    with replica(layout=layout) as site:
        run = site_check(site.url, "--json")
    assert run.returncode == 0, run.stderr[-3000:]
    assert [row["check"] for row in run.rows] == CHECK_NAMES
    assert all(set(row) == {"check", "status", "seen", "remedy"} for row in run.rows)
    assert set(run.status.values()) == {"ok"}, run.rows
    key = next(row for row in run.rows if row["check"] == "key")
    where = "__RUNTIME_CONFIG__" if layout == "2026" else "__NEXT_DATA__.runtimeConfig"
    assert where in key["seen"]
    categories = next(row for row in run.rows if row["check"] == "categories")["seen"]
    if layout == "2026":  # the site's own GetShopProductsMenu is accepted
        assert re.match(r"GraphQL: \d+ departments; ", categories), categories
    else:  # no productCategories yet in 2024: the route serves the tree
        assert categories.startswith("GraphQL refused GetShopProductsMenu: "), categories
        assert re.search(r"; browse.json: \d+ departments$", categories), categories
    assert "Traceback" not in run.stderr


BREAKS = [
    # mode, the check it breaks, the section of docs/site.md its remedy names, skipped checks
    ("key-moved", "key", "section Key", {"product", "batch"}),
    ("build-id-missing", "build_id", "section Build id", {"listing"}),
    ("operation-renamed", "product", "section GraphQL", {"batch"}),
    ("gtin-removed", "product", "section GraphQL", set()),
    ("categories-moved", "categories", "section Categories", {"listing"}),
    ("categories-retyped", "categories", "section Categories", {"listing"}),
    # the GraphQL URL serves an HTML page: the category tree still comes from browse.json
    ("graphql-maintenance", "product", "section GraphQL", {"batch"}),
]


@pytest.mark.parametrize(
    ("mode", "check", "section", "skipped"), BREAKS, ids=[b[0] for b in BREAKS]
)
def test_each_broken_contract_point_is_the_one_check_changed(
    mode: str, check: str, section: str, skipped: set[str]
) -> None:
    with replica("--break", mode) as site:
        run = site_check(site.url, "--json")
    assert run.returncode == 4, run.stderr[-3000:]  # the site changed: as `scrapy crawl`
    changed = {name for name, status in run.status.items() if status == "changed"}
    assert changed == {check}, run.rows
    assert {name for name, status in run.status.items() if status == "skipped"} == skipped
    assert {status for status in run.status.values()} <= {"ok", "changed", "skipped"}
    row = next(row for row in run.rows if row["check"] == check)
    assert section in row["remedy"] and row["seen"]
    if mode.startswith("categories-"):  # the refused document, not the route's 404, first
        assert row["seen"].startswith("GraphQL refused GetShopProductsMenu: "), row
        assert row["seen"].endswith("; browse.json: HTTP 404"), row
    assert "Traceback" not in run.stderr


def test_the_table_names_the_change_and_its_remedy() -> None:
    with replica("--break", "key-moved") as site:
        run = site_check(site.url)
    assert run.returncode == 4
    key_line = next(line for line in run.stdout.splitlines() if line.startswith("key "))
    assert "changed" in key_line and "BFF_API_SUBSCRIPTION_KEY" in key_line
    assert "the key is no longer in the page: see docs/site.md, section Key" in run.stdout


def test_save_keeps_every_answer_with_the_key_masked(tmp_path: Path) -> None:
    saved = tmp_path / "answers"
    with replica() as site:
        run = site_check(site.url, "--json", "--save", str(saved))
    assert run.returncode == 0, run.stderr[-3000:]
    index = json.loads((saved / "responses.json").read_text())
    checks = [entry["check"] for entry in index]
    assert checks[0] == "home" and {"product", "batch", "listing", "product_page"} <= set(checks)
    files = [saved / entry["file"] for entry in index if entry["file"]]
    assert all(path.exists() for path in files)
    home = (saved / index[0]["file"]).read_text()
    assert "BFF_API_SUBSCRIPTION_KEY" in home  # the page is kept, its key is not
    for path in saved.iterdir():
        assert KEY not in path.read_text(), path


def test_a_maintenance_page_where_graphql_answers_is_a_change_and_is_saved(
    tmp_path: Path,
) -> None:
    """The answer is no GraphQL at all: no traceback, the row says what came (status,
    content type, first bytes), exit 4, and --save keeps it for the bug report."""
    saved = tmp_path / "answers"
    with replica("--break", "graphql-maintenance") as site:
        run = site_check(site.url, "--json", "--save", str(saved))
    assert run.returncode == 4, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    product = next(row for row in run.rows if row["check"] == "product")
    assert product["status"] == "changed"
    assert product["seen"].startswith(
        "no GraphQL answer: the answer is not JSON (HTTP 200, text/html"
    )
    assert "We'll be back soon" in product["seen"]
    index = json.loads((saved / "responses.json").read_text())
    kept = next(entry for entry in index if entry["check"] == "product")
    assert "maintenance" in (saved / kept["file"]).read_text()


def test_an_unreachable_site_is_reported_as_such_without_a_traceback() -> None:
    run = site_check("http://127.0.0.1:1", "--json", "-s", "RETRY_TIMES=0")
    assert run.returncode == 4
    assert run.status["home"] == "unreachable"
    assert {run.status[name] for name in CHECK_NAMES[1:]} == {"skipped"}
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sku", "milk"], "a Coles SKU is a number"),
        (["--save", "/proc/no-such-folder"], "cannot create it"),
        (["--base-url", "www.coles.com.au"], "must be an http:// or https:// URL"),
        (["extra"], "site-check takes no arguments"),
    ],
)
def test_bad_usage_is_a_one_line_error(args: list[str], message: str) -> None:
    run = site_check("http://127.0.0.1:1", *args)
    assert run.returncode == 2
    assert message in run.stderr
    assert "Traceback" not in run.stderr


# -- behind the protection -----------------------------------------------------------------------


@pytest.mark.browser
def test_the_challenge_is_solved_in_the_browser_and_every_check_passes() -> None:
    path = os.environ.get("COLES_CHROMIUM_PATH", "/usr/bin/chromium")
    require(os.path.exists(path), f"Chromium not found at {path}")
    with replica(challenge=True) as site:
        run = site_check(site.url, "--json")
    assert run.returncode == 0, run.stderr[-3000:]
    assert set(run.status.values()) == {"ok"}, run.rows
    home = next(row for row in run.rows if row["check"] == "home")
    assert "challenge solved in the browser" in home["seen"]


def test_a_block_page_without_proxies_is_blocked_with_the_remedy() -> None:
    with replica("--block-clients", "127.0.0.1") as site:
        run = site_check(site.url, "--json")
    assert run.returncode == 5  # blocked: as `scrapy crawl`
    assert run.status["home"] == "blocked"
    home = next(row for row in run.rows if row["check"] == "home")
    assert "COLES_PROXIES" in home["remedy"]
    assert "Traceback" not in run.stderr


@pytest.mark.proxy
def test_behind_a_block_page_an_accepted_proxy_passes_every_check(
    forward_proxies: list[ForwardProxy], tmp_path: Path
) -> None:
    blocked, accepted = forward_proxies
    saved = tmp_path / "answers"
    with replica("--block-clients", f"127.0.0.1,{blocked.exit_address}") as site:
        run = site_check(
            site.url,
            "--json",
            "--save",
            str(saved),
            "-s",
            f"COLES_PROXIES={blocked.url},{accepted.url}",
        )
    assert run.returncode == 0, run.stderr[-3000:]
    assert set(run.status.values()) == {"ok"}, run.rows
    passwords = [p.password for p in forward_proxies if p.password]
    assert passwords
    for password in passwords:
        assert password not in run.stdout + run.stderr
        for path in saved.iterdir():
            assert password not in path.read_text()


def test_scrapyd_runs_the_same_checks_as_a_crawl_that_exits_as_the_command(
    tmp_path: Path,
) -> None:
    stats_file = tmp_path / "stats.json"
    with replica("--break", "categories-moved") as site:
        command = [sys.executable, "-m", "scrapy", "crawl", "site_check"]
        command += ["-a", f"skus={','.join(SKUS)}", "-s", f"COLES_BASE_URL={site.url}", *FAST]
        proc = subprocess.run(
            command,
            cwd=PROJECT,
            env={**os.environ, "COLES_STATS_FILE": str(stats_file)},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert proc.returncode == 4, proc.stderr[-3000:]
    stats = json.loads(stats_file.read_text())
    assert stats["finish_reason"].startswith(
        "site_changed: categories: GraphQL refused GetShopProductsMenu: "
        "Cannot query field 'productCategories' on type 'Query'."
    )
    rows = {row["check"]: row["status"] for row in stats["site_check/results"]}
    assert rows["categories"] == "changed" and rows["product"] == "ok"
