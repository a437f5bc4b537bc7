"""The replica site keeps the contract of the real one (see the project's shared README).

Each test talks to a real replica server in a subprocess over HTTP, as a crawler would.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from colesbarcodes.replica import Catalogue, ReplicaProcess
from colesbarcodes.replica.gtin import MISSING, check_digit, is_valid

if TYPE_CHECKING:
    from collections.abc import Iterator
    from email.message import Message

BIG_CATEGORY = "pantry/breakfast/breakfast-cereal"
BIG_CATEGORY_SIZE = 105 * 48 + 7  # more than the 104 pages a listing ever shows
FIRST_FILLER_SKU = 5_000_000

# Hand-written products, one per kind of barcode trouble the site can send.
SPECIAL_PRODUCTS: list[dict[str, Any]] = [
    {"sku": 8060378, "name": "Fizz", "brand": "Appy", "size": "250mL", "price": 2.5,
     "gtin": "9300633600082", "category": "drinks/soft-drinks/cola"},
    {"sku": 6433306, "name": "Original Seaweed Snack", "brand": "A+ Hosan", "size": "4g",
     "price": 0.9, "category": "pantry/international-foods/asian"},  # no gtin key
    {"sku": 1000010, "name": "Null Barcode", "brand": "Coles", "size": "1 each", "price": 1.0,
     "gtin": None},
    {"sku": 1000011, "name": "Empty Barcode", "brand": "Coles", "size": "1 each", "price": 1.0,
     "gtin": ""},
    {"sku": 1000012, "name": "Numeric Barcode", "brand": "Coles", "size": "1 each", "price": 1.0,
     "gtin": 9300633600082},
    {"sku": 1000013, "name": "Bad Check Digit", "brand": "Coles", "size": "1 each", "price": 1.0,
     "gtin": "9300633600083"},
    {"sku": 1000014, "name": "Delisted", "brand": "Coles", "size": "1 each", "price": 1.0,
     "gtin": "9300633600099", "unknown": True},
    {"sku": 1000015, "name": "Loose Bananas", "brand": "Coles", "size": "approx. 180g",
     "price": 4.5, "gtin": "2000000000008", "category": "fruit-vegetables/fruit/bananas"},
]  # fmt: skip


@dataclass
class Http:
    """A plain HTTP client (no JavaScript, no cookie jar), as a scraper without a browser."""

    base: str
    opener: urllib.request.OpenerDirector = field(
        default_factory=lambda: urllib.request.build_opener(urllib.request.ProxyHandler({}))
    )

    def request(
        self,
        path: str,
        *,
        method: str = "GET",
        json_body: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Message, bytes]:
        """(status, headers, body) without raising on 4xx/5xx, closing every response."""
        if json_body is not None:
            data = json.dumps(json_body).encode()
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers=headers or {}
        )
        if data is not None and "Content-Type" not in (headers or {}):
            request.add_header("Content-Type", "application/json")
        try:
            with self.opener.open(request, timeout=15) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.headers, error.read()

    def json(self, path: str, **kwargs: Any) -> Any:
        """Parsed JSON body of a request that must answer 200."""
        status, _, body = self.request(path, **kwargs)
        assert status == 200, (status, body[:300])
        return json.loads(body)


@pytest.fixture(scope="session")
def replica_catalogue_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A JSON-lines catalogue: the special products plus one category too big to list whole."""
    path = tmp_path_factory.mktemp("replica") / "catalogue.jsonl"
    with path.open("w") as out:
        for record in SPECIAL_PRODUCTS:
            out.write(json.dumps(record) + "\n")
        for i in range(BIG_CATEGORY_SIZE):
            sku = FIRST_FILLER_SKU + i
            filler = {"sku": sku, "name": f"Cereal {i}", "brand": "Kellogg's", "size": "500g",
                      "price": 5.0, "gtin": None, "category": BIG_CATEGORY}  # fmt: skip
            out.write(json.dumps(filler) + "\n")
    return path


@pytest.fixture(scope="session")
def replica_server(replica_catalogue_file: Path) -> Iterator[ReplicaProcess]:
    """One replica subprocess for the whole session (reset before each test)."""
    with ReplicaProcess(catalogue=replica_catalogue_file) as process:
        yield process


@pytest.fixture(scope="session")
def replica_initial_config(replica_server: ReplicaProcess) -> dict[str, Any]:
    """The config the replica started with, restored before each test."""
    return replica_server.config()


@pytest.fixture
def replica(
    replica_server: ReplicaProcess, replica_initial_config: dict[str, Any]
) -> ReplicaProcess:
    """The replica with its start-up config, zeroed stats and no valid bot-check cookie."""
    replica_server.configure(**replica_initial_config)
    replica_server.reset_stats()
    replica_server.revoke_cookies()
    return replica_server


@pytest.fixture
def http(replica: ReplicaProcess) -> Http:
    """A plain client pointed at the replica."""
    return Http(replica.url)


BOT_CHECK_MARKERS = (
    "Pardon Our Interruption",
    "onProtectionInitialized",
    "reeseSkipExpirationCheck",
)
NEXT_DATA = re.compile(r'<script id="__NEXT_DATA__" type="application/json">(.*?)</script>', re.S)
JSON_LD = re.compile(r'<script type="application/ld\+json">(.*?)</script>', re.S)
CHROMIUM = os.environ.get("COLES_CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def next_data(html: bytes | str) -> dict[str, Any]:
    text = html.decode() if isinstance(html, bytes) else html
    match = NEXT_DATA.search(text)
    assert match, "no __NEXT_DATA__ script"
    data: dict[str, Any] = json.loads(match.group(1))
    return data


def json_ld(html: bytes) -> dict[str, Any]:
    match = JSON_LD.search(html.decode())
    assert match, "no JSON-LD script"
    data: dict[str, Any] = json.loads(match.group(1))
    return data


def site_settings(http: Http) -> tuple[str, str, str]:
    """(buildId, subscription key, GraphQL URL) read from the home page, as a client does."""
    data = next_data(http.request("/")[2])
    config = data["runtimeConfig"]
    return data["buildId"], config["BFF_API_SUBSCRIPTION_KEY"], config["COLES_GRAPHQL_API_URL"]


def get_product(
    http: Http, sku: int | str, key: str | None = None, store: str = "0584"
) -> tuple[int, Message, bytes]:
    if key is None:
        key = site_settings(http)[1]
    body = {
        "operationName": "GetProduct",
        "variables": {"productId": str(sku), "storeId": f"COL:{store}"},
        "query": "query GetProduct($productId: ID!, $storeId: ID!) { product { id gtin } }",
    }
    return http.request(
        "/api/graphql",
        method="POST",
        json_body=body,
        headers={"ocp-apim-subscription-key": key} if key else {},
    )


def graphql_product(http: Http, sku: int | str) -> dict[str, Any] | None:
    status, _, body = get_product(http, sku)
    assert status == 200, body[:300]
    product: dict[str, Any] | None = json.loads(body)["data"]["product"]
    return product


def listing(http: Http, path: str, page: int, build_id: str | None = None) -> Any:
    build_id = build_id or site_settings(http)[0]
    return http.json(
        f"/_next/data/{build_id}/en/browse/{path}.json?slug={path}&page={page}&storeId=0584"
    )


# -- home page ------------------------------------------------------------------------------------


def test_home_page_next_data_gives_build_id_key_and_a_graphql_url_on_this_server(
    replica: ReplicaProcess, http: Http
) -> None:
    build_id, key, graphql_url = site_settings(http)

    assert build_id
    assert re.fullmatch(r"[0-9a-f]{32}", key)
    assert graphql_url == f"{replica.url}/api/graphql"


# -- GraphQL GetProduct ---------------------------------------------------------------------------


def test_graphql_returns_the_catalogue_gtin_in_a_product_record_like_the_real_one(
    http: Http,
) -> None:
    product = graphql_product(http, 8060378)

    assert product is not None
    assert product["gtin"] == "9300633600082"
    assert product["id"] == 8060378
    for key in ("name", "brand", "description", "size", "pricing", "availability", "onlineHeirs"):
        assert key in product


def test_graphql_sends_the_gtin_exactly_as_the_catalogue_holds_it(http: Http) -> None:
    no_key = graphql_product(http, 6433306)
    assert no_key is not None
    assert "gtin" not in no_key
    assert graphql_product(http, 1000010)["gtin"] is None  # type: ignore[index]
    assert graphql_product(http, 1000011)["gtin"] == ""  # type: ignore[index]
    assert graphql_product(http, 1000012)["gtin"] == 9300633600082  # type: ignore[index]
    assert graphql_product(http, 1000013)["gtin"] == "9300633600083"  # type: ignore[index]
    assert graphql_product(http, 1000015)["gtin"] == "2000000000008"  # type: ignore[index]


def test_graphql_answers_a_null_product_for_unknown_and_delisted_skus(http: Http) -> None:
    assert graphql_product(http, 999) is None
    assert graphql_product(http, 1000014) is None  # in the file, but marked unknown


def test_graphql_without_or_with_a_wrong_subscription_key_is_401(http: Http) -> None:
    status, _, body = get_product(http, 8060378, key="")
    assert status == 401
    assert "missing subscription key" in json.loads(body)["message"]

    status, _, body = get_product(http, 8060378, key="0" * 32)
    assert status == 401
    assert "invalid subscription key" in json.loads(body)["message"]


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"operationName": "GetProduct", "variables": {}}',
        b'{"operationName": "GetProduct", "variables": {"productId": "abc"}}',
        b'{"operationName": "SomethingElse", "variables": {"productId": "8060378"}}',
    ],
)
def test_graphql_bad_body_is_400_with_a_graphql_errors_array(http: Http, body: bytes) -> None:
    key = site_settings(http)[1]
    status, _, answer = http.request(
        "/api/graphql", method="POST", data=body, headers={"ocp-apim-subscription-key": key}
    )

    assert status == 400
    errors = json.loads(answer)["errors"]
    assert errors
    assert errors[0]["message"]


# -- product pages --------------------------------------------------------------------------------


def test_product_page_has_json_ld_sku_and_a_next_data_product_without_gtin(
    replica: ReplicaProcess, http: Http
) -> None:
    status, headers, html = http.request("/product/appy-fizz-250ml-8060378")

    assert status == 200
    assert headers.get_content_type() == "text/html"
    data = next_data(html)
    assert data["buildId"] == site_settings(http)[0]
    assert data["runtimeConfig"]["COLES_GRAPHQL_API_URL"] == f"{replica.url}/api/graphql"
    product = data["props"]["pageProps"]["product"]
    assert product["id"] == 8060378
    assert "gtin" not in product
    ld = json_ld(html)
    assert ld["@type"] == "Product"
    assert ld["sku"] == 8060378
    assert not {"gtin", "gtin13", "gtin14"} & set(ld)


def test_product_page_for_an_unknown_or_delisted_sku_is_404(http: Http) -> None:
    assert http.request("/product/nothing-here-999")[0] == 404
    assert http.request("/product/coles-delisted-1-each-1000014")[0] == 404


def test_page_gtin_switch_puts_the_gtin_on_product_pages(
    replica: ReplicaProcess, http: Http
) -> None:
    replica.configure(page_gtin=True)

    html = http.request("/product/appy-fizz-250ml-8060378")[2]

    assert next_data(html)["props"]["pageProps"]["product"]["gtin"] == "9300633600082"
    assert json_ld(html)["gtin13"] == "9300633600082"


def test_mismatch_switch_serves_another_products_record_like_the_real_oddity(
    replica: ReplicaProcess, http: Http
) -> None:
    replica.configure(mismatch_skus=[8060378])

    html = http.request("/product/appy-fizz-250ml-8060378")[2]

    assert json_ld(html)["sku"] == 8060378
    assert next_data(html)["props"]["pageProps"]["product"]["id"] != 8060378


def test_robots_txt_allows_everything_but_the_disallow_list(
    replica: ReplicaProcess, http: Http
) -> None:
    status, _, body = http.request("/robots.txt")
    assert status == 200
    assert body.decode().splitlines() == [
        "User-agent: *",
        "Disallow: /checkout",
        "Disallow: /account",
    ]

    replica.configure(robots_disallow=["/product/"])
    assert "Disallow: /product/" in http.request("/robots.txt")[2].decode()


# -- bot check ------------------------------------------------------------------------------------


def test_challenge_mode_answers_every_content_request_with_the_bot_check_page_and_200(
    replica: ReplicaProcess, http: Http
) -> None:
    replica.configure(challenge=True)

    for path in ("/", "/product/appy-fizz-250ml-8060378"):
        status, headers, body = http.request(path)
        assert status == 200
        text = body.decode()
        for marker in BOT_CHECK_MARKERS:
            assert marker in text
        assert "__NEXT_DATA__" not in text
        assert any(c.startswith("visid_incap_") for c in headers.get_all("Set-Cookie") or [])

    status, headers, body = get_product(http, 8060378, key=replica.config()["api_key"])
    assert status == 200
    assert headers.get_content_type() == "text/html"  # HTML where JSON was expected
    assert "Pardon Our Interruption" in body.decode()
    assert replica.stats()["challenge"]["served"] == 3


def test_challenge_mode_rejects_a_made_up_cookie(replica: ReplicaProcess, http: Http) -> None:
    replica.configure(challenge=True)

    for token in ("guess", "0123456789abcdef01234567.1f2e3d"):
        body = http.request(
            "/product/appy-fizz-250ml-8060378", headers={"Cookie": f"reese84={token}"}
        )[2]
        assert "Pardon Our Interruption" in body.decode()

    challenge = replica.stats()["challenge"]
    assert challenge["cookies_rejected"] == 2
    assert challenge["cookies_accepted"] == 0


def test_challenge_mode_leaves_robots_txt_and_the_control_api_alone(
    replica: ReplicaProcess, http: Http
) -> None:
    replica.configure(challenge=True)

    assert http.request("/robots.txt")[2].startswith(b"User-agent: *")
    assert replica.stats()["challenge"]["served"] == 0


@pytest.mark.browser
def test_challenge_cookie_is_set_by_running_the_page_script_in_chromium(
    replica: ReplicaProcess, http: Http
) -> None:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"Chromium not found at {CHROMIUM} (set COLES_CHROMIUM_PATH)")
        pytest.skip(f"Chromium not found at {CHROMIUM}")
    from playwright.async_api import async_playwright

    replica.configure(challenge=True)
    url = f"{replica.url}/product/appy-fizz-250ml-8060378"

    async def visit() -> tuple[str, list[dict[str, Any]]]:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                context = await browser.new_context()
                page = await context.new_page()
                await page.goto(url)  # the bot check; its script sets the cookie and reloads
                await page.wait_for_selector(
                    "script#__NEXT_DATA__", state="attached", timeout=30_000
                )
                return await page.content(), [dict(c) for c in await context.cookies()]
            finally:
                await browser.close()

    # A thread of its own, so asyncio.run works even if this test runs under a running loop.
    with ThreadPoolExecutor(max_workers=1) as pool:
        content, cookies = pool.submit(asyncio.run, visit()).result(timeout=120)

    assert next_data(content)["props"]["pageProps"]["product"]["id"] == 8060378
    reese84 = next(c["value"] for c in cookies if c["name"] == "reese84")
    assert any(c["name"].startswith("visid_incap_") for c in cookies)
    challenge = replica.stats()["challenge"]
    assert challenge["served"] >= 1
    assert challenge["scripts_served"] >= 1
    assert challenge["cookies_accepted"] == 1

    # The browser's cookie then works for a plain client too (how a crawler uses it).
    status, _, html = http.request(
        "/product/appy-fizz-250ml-8060378", headers={"Cookie": f"reese84={reese84}"}
    )
    assert status == 200
    assert json_ld(html)["sku"] == 8060378


# -- faults ---------------------------------------------------------------------------------------


def test_every_nth_request_is_rate_limited_with_429_and_retry_after(
    replica: ReplicaProcess, http: Http
) -> None:
    replica.configure(rate_limit_every=3, retry_after_s=7)

    answers = [http.request("/product/appy-fizz-250ml-8060378") for _ in range(6)]

    assert [status for status, _, _ in answers] == [200, 200, 429, 200, 200, 429]
    assert answers[2][1]["Retry-After"] == "7"
    assert replica.stats()["faults"]["rate_limited"] == 2


def test_every_nth_request_is_unavailable_with_503_and_retry_after(
    replica: ReplicaProcess, http: Http
) -> None:
    replica.configure(unavailable_every=2)

    answers = [get_product(http, 8060378, key=replica.config()["api_key"]) for _ in range(4)]

    assert [status for status, _, _ in answers] == [200, 503, 200, 503]
    assert answers[1][1]["Retry-After"] == "1"


def test_fail_skus_always_503_and_not_found_skus_look_unknown(
    replica: ReplicaProcess, http: Http
) -> None:
    replica.configure(fail_skus=[8060378], not_found_skus=[1000010])

    assert get_product(http, 8060378)[0] == 503
    assert http.request("/product/appy-fizz-250ml-8060378")[0] == 503
    assert graphql_product(http, 1000010) is None
    assert http.request("/product/coles-null-barcode-1-each-1000010")[0] == 404
    assert graphql_product(http, 6433306) is not None


def test_an_error_share_of_one_fails_every_content_request_with_429_or_503(
    replica: ReplicaProcess, http: Http
) -> None:
    replica.configure(error_share=1.0, seed=3)

    statuses = {http.request("/product/appy-fizz-250ml-8060378")[0] for _ in range(20)}

    assert statuses <= {429, 503}
    assert len(statuses) == 2


def test_config_endpoint_rejects_unknown_fields_and_bad_values(http: Http) -> None:
    for change in ({"no_such_field": 1}, {"rate_limit_every": "often"}, {"error_share": 2}):
        status, _, body = http.request("/__replica__/config", method="POST", json_body=change)
        assert status == 400
        assert json.loads(body)["error"]


# -- stats ----------------------------------------------------------------------------------------


def test_stats_count_requests_per_kind_per_sku_and_per_status(
    replica: ReplicaProcess, http: Http
) -> None:
    get_product(http, 8060378)  # also reads the home page for the key
    get_product(http, 8060378)
    http.request("/product/appy-fizz-250ml-8060378")
    get_product(http, 999)

    stats = replica.stats()
    assert stats["by_sku"]["8060378"] == 3
    assert stats["by_sku_kind"]["graphql"]["8060378"] == 2
    assert stats["by_sku_kind"]["product_page"]["8060378"] == 1
    assert stats["by_sku"]["999"] == 1
    assert stats["by_kind"]["home"] == 3
    assert stats["by_kind"]["graphql"] == 3
    assert stats["by_store"]["0584"] == 3
    assert stats["by_status"] == {"200": 7}
    assert stats["requests"] == 7

    replica.reset_stats()
    assert replica.stats()["requests"] == 0


# -- listings -------------------------------------------------------------------------------------


def test_listing_pages_have_48_product_rows_plus_ad_rows(http: Http) -> None:
    results = listing(http, BIG_CATEGORY, 2)["pageProps"]["searchResults"]

    rows = results["results"]
    products = [row for row in rows if row["_type"] == "PRODUCT"]
    assert len(products) == 48
    assert {row["_type"] for row in rows} - {"PRODUCT"}  # ads and cross-sell rows
    assert [row["id"] for row in products] == list(
        range(FIRST_FILLER_SKU + 48, FIRST_FILLER_SKU + 96)
    )
    row = products[0]
    for key in ("name", "brand", "description", "size", "availability", "merchandiseHeir",
                "onlineHeirs", "imageUris"):  # fmt: skip
        assert key in row
    assert {"now", "was", "unit", "comparable"} <= set(row["pricing"])
    assert {"price", "ofMeasureQuantity", "ofMeasureUnits", "isWeighted"} <= set(
        row["pricing"]["unit"]
    )
    assert "gtin" not in row


def test_listing_stops_after_104_pages_even_when_no_of_results_says_more(http: Http) -> None:
    last = listing(http, BIG_CATEGORY, 104)["pageProps"]["searchResults"]
    beyond = listing(http, BIG_CATEGORY, 105)["pageProps"]["searchResults"]

    assert last["noOfResults"] == BIG_CATEGORY_SIZE > 104 * 48
    assert len([r for r in last["results"] if r["_type"] == "PRODUCT"]) == 48
    assert beyond["noOfResults"] == BIG_CATEGORY_SIZE
    assert beyond["results"] == []


def test_listing_of_a_parent_category_includes_its_sub_categories(http: Http) -> None:
    results = listing(http, "pantry", 1)["pageProps"]["searchResults"]

    assert results["noOfResults"] == BIG_CATEGORY_SIZE + 1  # plus the seaweed snack
    assert {c["seoToken"] for c in results["catalogGroupView"]} == {
        "breakfast",
        "international-foods",
    }


def test_listing_with_a_stale_build_id_is_404(http: Http) -> None:
    status, _, _ = http.request(f"/_next/data/stale-build/en/browse/{BIG_CATEGORY}.json?page=1")
    assert status == 404
    status, _, _ = http.request("/_next/data/stale-build/en/browse.json")
    assert status == 404


def test_listing_of_an_unknown_category_is_404(http: Http) -> None:
    build_id = site_settings(http)[0]
    status, _, _ = http.request(f"/_next/data/{build_id}/en/browse/no-such-aisle.json?page=1")
    assert status == 404


def test_category_tree_counts_match_what_the_listings_show(http: Http) -> None:
    build_id = site_settings(http)[0]
    tree = http.json(f"/_next/data/{build_id}/en/browse.json")
    departments = tree["pageProps"]["allProductCategories"]["catalogGroupView"]

    by_token = {d["seoToken"]: d for d in departments}
    assert by_token["pantry"]["level"] == 1
    assert by_token["pantry"]["productCount"] == BIG_CATEGORY_SIZE + 1
    breakfast = next(
        c for c in by_token["pantry"]["catalogGroupView"] if c["seoToken"] == "breakfast"
    )
    cereal = breakfast["catalogGroupView"][0]
    assert (cereal["level"], cereal["seoToken"]) == (3, "breakfast-cereal")
    assert cereal["productCount"] == BIG_CATEGORY_SIZE
    assert {"id", "name"} <= set(cereal)


def test_listing_reports_requested_pages_in_stats(replica: ReplicaProcess, http: Http) -> None:
    listing(http, BIG_CATEGORY, 1)
    listing(http, BIG_CATEGORY, 2)
    listing(http, BIG_CATEGORY, 2)

    assert replica.stats()["listings"][BIG_CATEGORY] == {"1": 1, "2": 2}


# -- the generated catalogue ----------------------------------------------------------------------


def test_generated_catalogue_is_deterministic_with_valid_ean13_check_digits() -> None:
    first = Catalogue.generate(2000, seed=5)
    again = Catalogue.generate(2000, seed=5)

    assert list(first) == list(again)
    assert [p.sku for p in first][:3] == [1_000_000, 1_000_001, 1_000_002]
    kinds = {p.gtin_kind for p in first}
    assert {"global", "instore", "missing", "null", "empty", "invalid", "number"} <= kinds
    good = [p.gtin for p in first if p.gtin_kind in ("global", "instore", "internal")]
    assert all(isinstance(g, str) and len(g) == 13 and is_valid(g) for g in good)
    assert sum(g.startswith("93") for g in good if isinstance(g, str)) > len(good) / 2
    no_barcode = sum(p.gtin_kind in ("missing", "null", "empty") for p in first)
    assert 0.05 < no_barcode / len(first) < 0.15
    assert check_digit("930063360008") == 2


def test_catalogue_file_round_trip_keeps_a_missing_gtin_apart_from_null(tmp_path: Path) -> None:
    catalogue = Catalogue.generate(300, seed=2)
    path = tmp_path / "catalogue.jsonl"

    catalogue.to_jsonl(path)
    again = Catalogue.from_jsonl(path)

    assert [p.gtin for p in again] == [p.gtin for p in catalogue]
    assert any(p.gtin is MISSING for p in again)
    assert any(p.gtin is None for p in again)


def test_a_generated_replica_serves_the_gtins_its_catalogue_expects() -> None:
    expected = Catalogue.generate(60, seed=9)

    with ReplicaProcess(products=60, seed=9) as replica:
        http = Http(replica.url)
        for product in list(expected)[:20]:
            record = graphql_product(http, product.sku)
            if product.status != "active":
                assert record is None
            elif product.gtin is MISSING:
                assert record is not None
                assert "gtin" not in record
            else:
                assert record is not None
                assert record["gtin"] == product.gtin
