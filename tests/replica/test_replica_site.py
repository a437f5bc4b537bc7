"""The replica site keeps the contract of the real one (see the project's shared README).

Each test talks to a real replica server in a subprocess over HTTP, as a crawler would.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.client import HTTPConnection
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from colesbarcodes.replica import Catalogue, Challenge, ReplicaProcess
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


RUNTIME_CONFIG = re.compile(r"<script>window\.__RUNTIME_CONFIG__=(\{.*?\});</script>", re.S)
KEY_ANYWHERE = re.compile(r'"BFF_API_SUBSCRIPTION_KEY"\s*:\s*"([0-9a-f]{32})"')
SAMPLES = Path(__file__).resolve().parents[1] / "samples"

PRODUCT_FIELDS = (
    "id name brand description size availability gtin "
    "pricing { now was comparable unit { price ofMeasureQuantity ofMeasureUnits isWeighted } } "
    "merchandiseHeir { category } onlineHeirs { aisle aisleId } imageUris { uri }"
)
GET_PRODUCT_DETAILS = (
    "query GetProductDetails($productId: String!, $storeId: BrandedId!) { "
    f"product(productId: $productId, storeId: $storeId) {{ {PRODUCT_FIELDS} }} }}"
)
# The site's own menu query (2026, the same in every public client seen): its variable types
# and the type names of its fragments, children three levels down.
GET_SHOP_PRODUCTS_MENU = (
    "query GetShopProductsMenu($storeId: BrandedId!, $withCampaignLinks: Boolean!, "
    "$campaignCount: Int) { menuItems: productCategories(storeId: $storeId, "
    "withCampaignLinks: $withCampaignLinks, campaignCount: $campaignCount) { ...MenuItems } } "
    "fragment MenuItems on ProductCategories { restrictedIds: excludedCategoryIds "
    "items: catalogGroupView { ...MenuItem childItems: catalogGroupView { ...MenuItem "
    "childItems: catalogGroupView { ...MenuItem } } } } "
    "fragment MenuItem on ProductCategory "
    "{ id level name originalName productCount seoToken type subType }"
)
# The same menu as the project first declared it: a nullable Boolean where the site's argument
# is Boolean!, and a fragment on a type the site does not have.
GET_SHOP_PRODUCTS_MENU_MISDECLARED = (
    "query GetShopProductsMenu($storeId: BrandedId!, $withCampaignLinks: Boolean, "
    "$campaignCount: Int) { menuItems: productCategories(storeId: $storeId, "
    "withCampaignLinks: $withCampaignLinks, campaignCount: $campaignCount) { "
    "items: catalogGroupView { ...MenuItem childItems: catalogGroupView { ...MenuItem } } "
    "restrictedIds: excludedCategoryIds } } "
    "fragment MenuItem on CatalogGroupView { id level name productCount seoToken type }"
)


def runtime_config(html: bytes) -> dict[str, Any] | None:
    """``window.__RUNTIME_CONFIG__`` of a page (2026), or None."""
    match = RUNTIME_CONFIG.search(html.decode())
    return None if match is None else dict(json.loads(match.group(1)))


def site_settings(http: Http) -> tuple[str, str, str]:
    """(buildId, subscription key, GraphQL URL) read from the home page, as a 2026 client does:
    the key wherever the page has it, the published URL or else ``{base}/api/graphql``."""
    page = http.request("/")[2]
    data = next_data(page)
    key = KEY_ANYWHERE.search(page.decode())
    assert key, "no subscription key on the home page"
    url = data.get("runtimeConfig", {}).get("COLES_GRAPHQL_API_URL") or f"{http.base}/api/graphql"
    return data["buildId"], key.group(1), url


def post_graphql(
    http: Http,
    query: str,
    variables: dict[str, Any] | None = None,
    operation: str | None = "GetProductDetails",
    key: str | None = None,
) -> tuple[int, Message, bytes]:
    """POST a GraphQL document with the key from the home page (or ``key``; "" for none)."""
    if key is None:
        key = site_settings(http)[1]
    body: dict[str, Any] = {"query": query, "variables": variables or {}}
    if operation is not None:
        body["operationName"] = operation
    return http.request(
        "/api/graphql",
        method="POST",
        json_body=body,
        headers={"ocp-apim-subscription-key": key} if key else {},
    )


def graphql_answer(
    http: Http, query: str, variables: dict[str, Any] | None = None, **kw: Any
) -> tuple[int, dict[str, Any]]:
    """(status, JSON answer) of a GraphQL request."""
    status, _, body = post_graphql(http, query, variables, **kw)
    answer: dict[str, Any] = json.loads(body)
    return status, answer


def get_product(
    http: Http, sku: int | str, key: str | None = None, store: str = "0584"
) -> tuple[int, Message, bytes]:
    """The site's own single ``GetProductDetails`` request."""
    variables = {"productId": str(sku), "storeId": f"COL:{store}"}
    return post_graphql(http, GET_PRODUCT_DETAILS, variables, key=key)


def graphql_product(http: Http, sku: int | str) -> dict[str, Any] | None:
    """The product record, or None when the answer says "not found" (HTTP 200)."""
    status, _, body = get_product(http, sku)
    assert status == 200, body[:300]
    answer = json.loads(body)
    product: dict[str, Any] | None = answer["data"]["product"]
    if product is None:
        assert "not found" in answer["errors"][0]["message"]
    return product


def batched_document(
    skus: list[int | str], fragment: str = "id name gtin"
) -> tuple[str, dict[str, Any]]:
    """A batched ``GetProductDetails``: one aliased ``product`` field per SKU, a fragment."""
    declared = ", ".join(f"$p{i}: String!" for i in range(len(skus)))
    fields = " ".join(
        f"p{i}: product(productId: $p{i}, storeId: $storeId) {{ ...Barcode }}"
        for i in range(len(skus))
    )
    query = (
        f"query GetProductDetails($storeId: BrandedId!, {declared}) {{ {fields} }} "
        f"fragment Barcode on Product {{ {fragment} }}"
    )
    variables: dict[str, Any] = {"storeId": "COL:0584"}
    variables.update({f"p{i}": str(sku) for i, sku in enumerate(skus)})
    return query, variables


def request_from(
    address: str, url: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, str]:
    """(status, body) of a GET sent from a given local address (every 127.x is this machine)."""
    parts = urllib.parse.urlsplit(url)
    connection = HTTPConnection(
        parts.hostname or "127.0.0.1", parts.port, timeout=15, source_address=(address, 0)
    )
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def listing(http: Http, path: str, page: int, build_id: str | None = None) -> Any:
    build_id = build_id or site_settings(http)[0]
    return http.json(
        f"/_next/data/{build_id}/en/browse/{path}.json?slug={path}&page={page}&storeId=0584"
    )


# -- home page ------------------------------------------------------------------------------------


def test_home_page_2026_carries_the_key_in_runtime_config_and_publishes_no_graphql_url(
    replica: ReplicaProcess, http: Http
) -> None:
    page = http.request("/")[2]

    config = runtime_config(page)
    assert config is not None, "no window.__RUNTIME_CONFIG__ script"
    assert re.fullmatch(r"[0-9a-f]{32}", config["BFF_API_SUBSCRIPTION_KEY"])
    assert config["BFF_API_SUBSCRIPTION_KEY"] == replica.config()["api_key"]
    assert "<script>window.__RUNTIME_CONFIG__=" in page.decode()  # inline, without an id
    data = next_data(page)
    assert data["buildId"]
    assert "runtimeConfig" not in data
    assert "graphql" not in page.decode().lower()  # clients default to {base}/api/graphql


def test_home_page_2024_carries_key_and_graphql_url_in_next_data_runtime_config(
    replica: ReplicaProcess, http: Http
) -> None:
    replica.configure(layout="2024")
    page = http.request("/")[2]

    assert runtime_config(page) is None
    assert "__RUNTIME_CONFIG__" not in page.decode()
    data = next_data(page)
    assert data["buildId"]
    assert re.fullmatch(r"[0-9a-f]{32}", data["runtimeConfig"]["BFF_API_SUBSCRIPTION_KEY"])
    assert data["runtimeConfig"]["COLES_GRAPHQL_API_URL"] == f"{replica.url}/api/graphql"


def test_home_page_can_publish_no_key_or_a_key_the_api_refuses(
    replica: ReplicaProcess, http: Http
) -> None:
    replica.configure(publish_key=False)
    assert "BFF_API_SUBSCRIPTION_KEY" not in http.request("/")[2].decode()

    replica.configure(publish_key=True, published_key="0" * 32)
    assert site_settings(http)[1] == "0" * 32
    assert get_product(http, 8060378)[0] == 401


def test_config_insists_on_32_lowercase_hex_keys_and_known_layouts(http: Http) -> None:
    for change in ({"api_key": "ABC"}, {"api_key": "A" * 32}, {"layout": "2025"}):
        status, _, body = http.request("/__replica__/config", method="POST", json_body=change)
        assert status == 400, change
        assert json.loads(body)["error"]


# -- GraphQL: GetProductDetails -------------------------------------------------------------------


def test_graphql_single_get_product_details_answers_the_record_with_its_gtin(
    http: Http,
) -> None:
    product = graphql_product(http, 8060378)

    assert product is not None
    assert product["gtin"] == "9300633600082"
    assert product["id"] == 8060378
    assert set(product) == {"id", "name", "brand", "description", "size", "availability",
                            "gtin", "pricing", "merchandiseHeir", "onlineHeirs", "imageUris"}  # fmt: skip
    assert set(product["pricing"]["unit"]) == {
        "price", "ofMeasureQuantity", "ofMeasureUnits", "isWeighted"
    }  # fmt: skip


def test_graphql_answers_only_the_fields_a_query_selects(http: Http) -> None:
    status, answer = graphql_answer(
        http,
        "query GetProductDetails($productId: String!, $storeId: BrandedId!) { "
        "product(productId: $productId, storeId: $storeId) { name } }",
        {"productId": "8060378", "storeId": "COL:0584"},
    )

    assert status == 200
    assert answer == {"data": {"product": {"name": "Fizz"}}}


def sample_selection(value: Any) -> str:
    """A selection set asking for every non-null field of a JSON sample (lists: all items')."""
    if isinstance(value, list):
        merged: dict[str, Any] = {}
        for item in value:
            if isinstance(item, dict):
                for key, inner in item.items():
                    if merged.get(key) in (None, []):
                        merged[key] = inner
        return sample_selection(merged) if merged else ""
    if isinstance(value, dict):
        parts = []
        for key, inner in value.items():
            if inner is None or inner == []:
                continue  # no subfields to pick from a null; introspection covers these
            nested = sample_selection(inner)
            parts.append(f"{key} {{ {nested} }}" if nested else key)
        return " ".join(parts)
    return ""


INTROSPECT_TYPES = (
    "query Types { __schema { types { name fields { name type { name ofType { name "
    "ofType { name ofType { name } } } } } } } }"
)


def named_type(ref: dict[str, Any]) -> str:
    while ref.get("name") is None:
        ref = ref["ofType"]
    return str(ref["name"])


def test_every_field_of_the_real_get_product_details_answer_is_in_the_schema(
    http: Http,
) -> None:
    sample = json.loads((SAMPLES / "coles_graphql_GetProductDetails.json").read_text())
    status, answer = graphql_answer(http, INTROSPECT_TYPES, operation="Types")
    assert status == 200, answer
    fields = {
        t["name"]: {f["name"]: named_type(f["type"]) for f in t["fields"] or []}
        for t in answer["data"]["__schema"]["types"]
    }
    missing: list[str] = []

    def walk(value: Any, type_name: str, where: str) -> None:
        items = value if isinstance(value, list) else [value]
        for item in items:
            if not isinstance(item, dict):
                continue
            for key, inner in item.items():
                if key not in fields[type_name]:
                    missing.append(f"{where}.{key}")
                else:
                    walk(inner, fields[type_name][key], f"{where}.{key}")

    walk(sample["data"]["product"], "Product", "product")
    assert missing == []
    assert fields["Product"]["gtin"] == "String"
    assert fields["Product"]["id"] == "Int"


def test_every_field_of_the_real_get_product_details_answer_can_be_queried(http: Http) -> None:
    sample = json.loads((SAMPLES / "coles_graphql_GetProductDetails.json").read_text())
    selection = sample_selection(sample["data"]["product"])
    query = (
        "query GetProductDetails($productId: String!, $storeId: BrandedId!, "
        "$shoppingMethod: ShoppingMethod, $useV2NipAndAllergens: Boolean) { "
        "product(productId: $productId, storeId: $storeId, shoppingMethod: $shoppingMethod, "
        f"useV2NipAndAllergens: $useV2NipAndAllergens) {{ {selection} }} }}"
    )
    variables = {"productId": "8060378", "storeId": "COL:0584",
                 "shoppingMethod": "HOME_DELIVERY", "useV2NipAndAllergens": True}  # fmt: skip

    status, answer = graphql_answer(http, query, variables)

    assert status == 200, answer
    product = answer["data"]["product"]
    asked = {k for k, v in sample["data"]["product"].items() if v is not None and v != []}
    assert set(product) == asked
    assert product["gtin"] == "9300633600082"
    assert isinstance(product["brandDetails"]["id"], int)


def test_graphql_sends_the_gtin_as_a_string_field_the_way_a_graphql_server_does(
    http: Http,
) -> None:
    assert graphql_product(http, 6433306)["gtin"] is None  # type: ignore[index]  # no gtin key
    assert graphql_product(http, 1000010)["gtin"] is None  # type: ignore[index]
    assert graphql_product(http, 1000011)["gtin"] == ""  # type: ignore[index]
    assert graphql_product(http, 1000012)["gtin"] == "9300633600082"  # type: ignore[index]
    assert graphql_product(http, 1000013)["gtin"] == "9300633600083"  # type: ignore[index]
    assert graphql_product(http, 1000015)["gtin"] == "2000000000008"  # type: ignore[index]


def test_unknown_and_delisted_skus_are_product_not_found_errors_with_a_null_product(
    http: Http,
) -> None:
    for sku in (999, 1000014):  # not in the file; in the file but marked unknown
        status, answer = graphql_answer(
            http, GET_PRODUCT_DETAILS, {"productId": str(sku), "storeId": "COL:0584"}
        )
        assert status == 200
        assert answer["data"] == {"product": None}
        (error,) = answer["errors"]
        assert error["message"] == f"Product {sku} not found"  # the site's words (2026)
        assert error["extensions"]["code"] == "NOT_FOUND"
        assert error["path"] == ["product"]


def test_a_batched_document_with_aliases_and_a_fragment_answers_each_alias(
    replica: ReplicaProcess, http: Http
) -> None:
    query, variables = batched_document([8060378, 999, 1000012, 1000014])

    status, answer = graphql_answer(http, query, variables)

    assert status == 200
    assert answer["data"] == {
        "p0": {"id": 8060378, "name": "Fizz", "gtin": "9300633600082"},
        "p1": None,
        "p2": {"id": 1000012, "name": "Numeric Barcode", "gtin": "9300633600082"},
        "p3": None,
    }
    assert {tuple(e["path"]): e["message"] for e in answer["errors"]} == {
        ("p1",): "Product 999 not found",
        ("p3",): "Product 1000014 not found",
    }
    stats = replica.stats()
    assert stats["graphql_documents"] == 1
    assert stats["graphql_products"] == 4
    assert stats["by_sku_kind"]["graphql"] == {"8060378": 1, "999": 1, "1000012": 1, "1000014": 1}


def test_a_non_null_product_field_nulls_the_whole_document_for_one_unknown_sku(
    replica: ReplicaProcess, http: Http
) -> None:
    """As GraphQL propagates nulls: the error names the alias, ``data`` is null, status 200."""
    replica.configure(product_non_null=True)
    query, variables = batched_document([8060378, 999, 1000012])
    status, answer = graphql_answer(http, query, variables)
    assert status == 200
    assert answer["data"] is None
    assert [(e["path"], e["message"]) for e in answer["errors"]] == [
        (["p1"], "Product 999 not found")
    ]


def test_a_field_error_on_gtin_nulls_the_field_and_names_its_path(
    replica: ReplicaProcess, http: Http
) -> None:
    replica.configure(gtin_error_skus=[1000012])
    query, variables = batched_document([8060378, 1000012])
    status, answer = graphql_answer(http, query, variables)
    assert status == 200
    assert answer["data"]["p1"] == {"id": 1000012, "name": "Numeric Barcode", "gtin": None}
    assert [e["path"] for e in answer["errors"]] == [["p1", "gtin"]]
    assert answer["data"]["p0"]["gtin"] == "9300633600082"


def test_an_unknown_store_is_invalid_storeid_as_bad_user_input_on_each_alias(
    replica: ReplicaProcess, http: Http
) -> None:
    replica.configure(unknown_stores=[9999])
    status, answer = graphql_answer(
        http, GET_PRODUCT_DETAILS, {"productId": "8060378", "storeId": "COL:9999"}
    )
    assert status == 200 and answer["data"] == {"product": None}
    (error,) = answer["errors"]
    assert error["message"] == "Invalid StoreId: COL:9999"
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and error["path"] == ["product"]


def test_product_ids_can_be_inline_literals_and_every_one_is_counted(
    replica: ReplicaProcess, http: Http
) -> None:
    query = (
        "query GetProductDetails($storeId: BrandedId!, $second: String!) { "
        'a: product(productId: "8060378", storeId: $storeId) { id gtin } '
        "b: product(productId: $second, storeId: $storeId) { id } "
        'c: product(productId: "1000015", storeId: "COL:0584") { ...on Product { gtin } } }'
    )

    status, answer = graphql_answer(http, query, {"storeId": "COL:0584", "second": "6433306"})

    assert status == 200, answer
    assert answer["data"] == {
        "a": {"id": 8060378, "gtin": "9300633600082"},
        "b": {"id": 6433306},
        "c": {"gtin": "2000000000008"},
    }
    stats = replica.stats()
    assert stats["by_sku"] == {"8060378": 1, "6433306": 1, "1000015": 1}
    assert stats["by_operation"] == {"GetProductDetails": 1}


def test_a_variable_declared_with_another_type_than_the_schema_is_a_validation_error(
    http: Http,
) -> None:
    query = (
        "query GetProductDetails($productId: ID!, $storeId: BrandedId!) { "
        "product(productId: $productId, storeId: $storeId) { id gtin } }"
    )

    status, answer = graphql_answer(http, query, {"productId": "8060378", "storeId": "COL:0584"})

    assert status == 400
    assert "data" not in answer
    (error,) = answer["errors"]
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert "$productId" in error["message"] and "String!" in error["message"]


@pytest.mark.parametrize(
    ("query", "operation", "words"),
    [
        ("query GetProductDetails($productId: String!, $storeId: BrandedId!) { product("
         "productId: $productId, storeId: $storeId) { id barcode } }", None, "barcode"),
        ("query GetProductDetails($productId: String!, $storeId: BrandedId!, $unused: Int) { "
         "product(productId: $productId, storeId: $storeId) { id } }", None, "$unused"),
        ("query GetProductDetails($productId: String!, $storeId: BrandedId!) { product("
         "productId: $productId, storeId: $storeId) { id } }", "GetProduct", "GetProduct"),
    ],
    ids=["unknown field", "unused variable", "unknown operation name"],
)  # fmt: skip
def test_documents_that_do_not_validate_are_400_without_data(
    http: Http, query: str, operation: str | None, words: str
) -> None:
    variables = {"productId": "8060378", "storeId": "COL:0584"}
    status, answer = graphql_answer(http, query, variables, operation=operation)

    assert status == 400
    assert "data" not in answer
    assert answer["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert words in answer["errors"][0]["message"]


def test_a_syntax_error_is_400_parse_failed(http: Http) -> None:
    status, answer = graphql_answer(http, "query GetProductDetails { product(productId: ")

    assert status == 400
    assert answer["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    assert "Syntax Error" in answer["errors"][0]["message"]


@pytest.mark.parametrize(
    ("variables", "name"),
    [
        ({"productId": "8060378", "storeId": "0584"}, "$storeId"),  # not COL:<digits>
        ({"productId": "8060378", "storeId": "COL:abc"}, "$storeId"),
        ({"storeId": "COL:0584"}, "$productId"),  # a required variable missing
        ({"productId": 8060378, "storeId": "COL:0584"}, "$productId"),  # String! gets a number
    ],
)
def test_variable_values_that_do_not_coerce_are_400_bad_user_input_naming_the_variable(
    http: Http, variables: dict[str, Any], name: str
) -> None:
    status, answer = graphql_answer(http, GET_PRODUCT_DETAILS, variables)

    assert status == 400
    assert "data" not in answer
    error = answer["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert name in error["message"]


def test_a_well_formed_store_id_that_is_no_store_is_invalid_store_id(http: Http) -> None:
    status, answer = graphql_answer(
        http, GET_PRODUCT_DETAILS, {"productId": "8060378", "storeId": "COL:58412"}
    )

    assert status == 200
    assert answer["data"] == {"product": None}
    (error,) = answer["errors"]
    assert "Invalid StoreId" in error["message"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'{"operationName": "GetProductDetails", "variables": {}}',
     b'{"query": "{ __typename }", "variables": [1]}'],
)  # fmt: skip
def test_a_body_that_is_no_graphql_request_is_400_with_an_errors_array(
    http: Http, body: bytes
) -> None:
    key = site_settings(http)[1]
    status, _, answer = http.request(
        "/api/graphql", method="POST", data=body, headers={"ocp-apim-subscription-key": key}
    )

    assert status == 400
    errors = json.loads(answer)["errors"]
    assert errors[0]["message"]
    assert errors[0]["extensions"]["code"]


def test_graphql_without_or_with_a_wrong_subscription_key_is_401(http: Http) -> None:
    status, _, body = get_product(http, 8060378, key="")
    assert status == 401
    assert json.loads(body)["statusCode"] == 401
    assert "missing subscription key" in json.loads(body)["message"]

    status, _, body = get_product(http, 8060378, key="0" * 32)
    assert status == 401
    assert "invalid subscription key" in json.loads(body)["message"]


def test_more_product_fields_than_max_aliases_is_refused_before_execution(
    replica: ReplicaProcess, http: Http
) -> None:
    replica.configure(max_aliases=3)

    status, answer = graphql_answer(http, *batched_document([8060378, 1000012, 1000013, 1000015]))
    assert status == 400
    assert answer == {
        "errors": [
            {
                "message": "Query is too complex: 4 product lookups exceed the limit of 3.",
                "extensions": {"code": "QUERY_TOO_COMPLEX"},
            }
        ]
    }
    status, answer = graphql_answer(http, *batched_document([8060378, 1000012, 1000013]))
    assert status == 200
    assert [p["id"] for p in answer["data"].values()] == [8060378, 1000012, 1000013]
    stats = replica.stats()
    assert stats["too_complex"] == 1
    assert stats["graphql_products"] == 7  # refused ones are still counted as asked


def test_the_key_rotates_after_n_accepted_requests_and_the_old_one_is_refused(
    replica: ReplicaProcess, http: Http
) -> None:
    replica.configure(rotate_key_after=2)
    old = site_settings(http)[1]

    assert [get_product(http, 8060378, key=old)[0] for _ in range(3)] == [200, 200, 401]

    new = site_settings(http)[1]  # the home page shows the new key
    assert new != old
    assert re.fullmatch(r"[0-9a-f]{32}", new)
    assert get_product(http, 8060378, key=new)[0] == 200
    assert get_product(http, 8060378, key=old)[0] == 401
    assert replica.config()["api_key"] == new
    assert replica.stats()["key_rotations"] == 1


def test_fail_skus_make_a_whole_batched_document_503(replica: ReplicaProcess, http: Http) -> None:
    replica.configure(fail_skus=[1000012])

    status, _, _ = post_graphql(http, *batched_document([8060378, 1000012]))

    assert status == 503
    assert replica.stats()["faults"]["fail_sku"] == 1


# -- GraphQL: GetShopProductsMenu -----------------------------------------------------------------


def test_get_shop_products_menu_serves_the_browse_tree_in_2026(
    replica: ReplicaProcess, http: Http
) -> None:
    build_id = site_settings(http)[0]
    variables = {"storeId": "COL:0584", "withCampaignLinks": False, "campaignCount": 0}

    status, answer = graphql_answer(
        http, GET_SHOP_PRODUCTS_MENU, variables, operation="GetShopProductsMenu"
    )

    assert status == 200, answer
    menu = answer["data"]["menuItems"]
    assert menu["restrictedIds"] == []
    tree = http.json(f"/_next/data/{build_id}/en/browse.json")
    departments = tree["pageProps"]["allProductCategories"]["catalogGroupView"]
    assert [d["seoToken"] for d in menu["items"]] == [d["seoToken"] for d in departments]
    pantry = next(d for d in menu["items"] if d["seoToken"] == "pantry")
    assert pantry["level"] == 1
    assert pantry["productCount"] == BIG_CATEGORY_SIZE + 1
    breakfast = next(c for c in pantry["childItems"] if c["seoToken"] == "breakfast")
    assert breakfast["childItems"] == [
        {"id": breakfast["childItems"][0]["id"], "level": 3, "name": "Breakfast Cereal",
         "originalName": "Breakfast Cereal", "productCount": BIG_CATEGORY_SIZE,
         "seoToken": "breakfast-cereal", "type": "CATALOG", "subType": None}
    ]  # fmt: skip
    assert replica.stats()["by_operation"]["GetShopProductsMenu"] == 1


def test_a_menu_document_declared_otherwise_than_the_site_is_refused_whole(
    replica: ReplicaProcess, http: Http
) -> None:
    """As a real GraphQL server validates before it runs anything: whatever the variables
    hold, a ``Boolean`` variable for the ``Boolean!`` argument and a fragment on a type the
    schema lacks refuse the whole document, each error named."""
    variables = {"storeId": "COL:0584", "withCampaignLinks": False, "campaignCount": 0}

    status, answer = graphql_answer(
        http, GET_SHOP_PRODUCTS_MENU_MISDECLARED, variables, operation="GetShopProductsMenu"
    )

    assert status == 400
    assert "data" not in answer
    assert {e["extensions"]["code"] for e in answer["errors"]} == {"GRAPHQL_VALIDATION_FAILED"}
    messages = [e["message"] for e in answer["errors"]]
    assert (
        "Variable '$withCampaignLinks' of type 'Boolean' used in position expecting type "
        "'Boolean!'." in messages
    )
    assert "Unknown type 'CatalogGroupView'." in messages
    status, answer = graphql_answer(
        http, GET_SHOP_PRODUCTS_MENU, variables, operation="GetShopProductsMenu"
    )
    assert status == 200 and answer["data"]["menuItems"]["items"]


def test_product_categories_does_not_exist_in_the_2024_schema(
    replica: ReplicaProcess, http: Http
) -> None:
    replica.configure(layout="2024")
    variables = {"storeId": "COL:0584", "withCampaignLinks": False, "campaignCount": 0}

    status, answer = graphql_answer(
        http, GET_SHOP_PRODUCTS_MENU, variables, operation="GetShopProductsMenu"
    )

    assert status == 400
    assert answer["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert "productCategories" in answer["errors"][0]["message"]
    assert graphql_product(http, 8060378) is not None  # products are there in 2024 too


# -- product pages --------------------------------------------------------------------------------


def test_product_page_2026_has_json_ld_sku_and_gtin_but_no_gtin_in_next_data(
    replica: ReplicaProcess, http: Http
) -> None:
    status, headers, html = http.request("/product/appy-fizz-250ml-8060378")

    assert status == 200
    assert headers.get_content_type() == "text/html"
    data = next_data(html)
    assert data["buildId"] == site_settings(http)[0]
    assert "runtimeConfig" not in data
    assert runtime_config(html) is not None
    product = data["props"]["pageProps"]["product"]
    assert product["id"] == 8060378
    assert "gtin" not in product
    ld = json_ld(html)
    assert ld["@type"] == "Product"
    assert ld["sku"] == 8060378
    assert ld["gtin"] == "9300633600082"
    assert not {"gtin13", "gtin14"} & set(ld)


def test_product_page_2026_json_ld_has_no_gtin_when_the_product_has_no_valid_one(
    http: Http,
) -> None:
    for path in ("/product/coles-bad-check-digit-1-each-1000013",
                 "/product/coles-null-barcode-1-each-1000010"):  # fmt: skip
        assert "gtin" not in json_ld(http.request(path)[2])
    numeric = json_ld(http.request("/product/coles-numeric-barcode-1-each-1000012")[2])
    assert numeric["gtin"] == "9300633600082"


def test_product_page_2024_has_json_ld_sku_and_no_gtin_anywhere(
    replica: ReplicaProcess, http: Http
) -> None:
    replica.configure(layout="2024")
    html = http.request("/product/appy-fizz-250ml-8060378")[2]

    data = next_data(html)
    assert data["runtimeConfig"]["COLES_GRAPHQL_API_URL"] == f"{replica.url}/api/graphql"
    assert "gtin" not in data["props"]["pageProps"]["product"]
    ld = json_ld(html)
    assert ld["sku"] == 8060378
    assert not {"gtin", "gtin13", "gtin14"} & set(ld)


def test_product_page_for_an_unknown_or_delisted_sku_is_404(http: Http) -> None:
    assert http.request("/product/nothing-here-999")[0] == 404
    assert http.request("/product/coles-delisted-1-each-1000014")[0] == 404


@pytest.mark.parametrize("layout", ["2026", "2024"])
def test_page_gtin_switch_puts_the_gtin_in_next_data_and_json_ld_gtin13(
    replica: ReplicaProcess, http: Http, layout: str
) -> None:
    replica.configure(page_gtin=True, layout=layout)

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


def set_cookies(headers: Message) -> dict[str, str]:
    """name -> value of a response's Set-Cookie headers."""
    cookies = {}
    for header in headers.get_all("Set-Cookie") or []:
        name, _, rest = header.partition("=")
        cookies[name.strip()] = rest.split(";", 1)[0]
    return cookies


def solve_like_a_browser(http: Http, path: str) -> tuple[dict[str, str], str]:
    """(cookies the challenge response set, token the page's script computes): what a browser
    running the script would hold, computed with the replica's own Challenge code."""
    status, headers, body = http.request(path)
    assert status == 200
    page = body.decode()
    assert "Pardon Our Interruption" in page
    script_src = re.search(r'scriptElement\.src = "([^"]+)"', page)
    assert script_src
    status, _, script = http.request(script_src.group(1))
    assert status == 200
    return set_cookies(headers), Challenge.solve_script(script.decode())


def cookie_header(cookies: dict[str, str]) -> dict[str, str]:
    return {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}


@pytest.mark.parametrize("layout", ["2026", "2024"])
def test_challenge_mode_answers_every_content_request_with_the_bot_check_page_and_200(
    replica: ReplicaProcess, http: Http, layout: str
) -> None:
    replica.configure(challenge=True, layout=layout)

    for path in ("/", "/product/appy-fizz-250ml-8060378"):
        status, headers, body = http.request(path)
        assert status == 200
        text = body.decode()
        for marker in BOT_CHECK_MARKERS:
            assert marker in text
        assert "__NEXT_DATA__" not in text
        assert any(c.startswith("visid_incap_") for c in set_cookies(headers))

    status, headers, body = get_product(http, 8060378, key=replica.config()["api_key"])
    assert status == 200
    assert headers.get_content_type() == "text/html"  # HTML where JSON was expected
    assert "Pardon Our Interruption" in body.decode()
    assert replica.stats()["challenge"]["served"] == 3


def test_2026_challenge_sets_only_visid_incap_and_its_script_sets_incap_ses_and_nlbi(
    replica: ReplicaProcess, http: Http
) -> None:
    replica.configure(challenge=True)

    status, headers, body = http.request("/")
    assert status == 200
    assert list(set_cookies(headers)) == ["visid_incap_2927981"]
    script_src = re.search(r'scriptElement\.src = "([^"]+)"', body.decode())
    assert script_src
    script = http.request(script_src.group(1))[2].decode()
    assert "incap_ses_1234_2927981=" in script
    assert "nlbi_2927981=" in script
    assert "reese84" not in script


def test_2026_challenge_passes_only_with_visid_incap_and_a_solved_token_in_incap_ses(
    replica: ReplicaProcess, http: Http
) -> None:
    replica.configure(challenge=True)
    path = "/product/appy-fizz-250ml-8060378"
    visitor, token = solve_like_a_browser(http, path)
    assert list(visitor) == ["visid_incap_2927981"]

    def page(cookies: dict[str, str]) -> str:
        return http.request(path, headers=cookie_header(cookies))[2].decode()

    assert "Pardon Our Interruption" in page(visitor)  # the visitor cookie alone
    assert "Pardon Our Interruption" in page({"incap_ses_1234_2927981": token})  # no visitor
    assert "Pardon Our Interruption" in page({**visitor, "reese84": token})  # 2024's cookie
    assert "Pardon Our Interruption" in page({**visitor, "incap_ses_1234_2927981": "0" * 24})
    passed = page({**visitor, "incap_ses_1234_2927981": token, "nlbi_2927981": "x"})
    assert json_ld(passed.encode())["sku"] == 8060378
    challenge = replica.stats()["challenge"]
    assert challenge["cookies_accepted"] == 1
    assert challenge["passed"] == 1

    replica.revoke_cookies()
    assert "Pardon Our Interruption" in page({**visitor, "incap_ses_1234_2927981": token})


def test_2026_challenge_token_expires_after_the_cookie_ttl(
    replica: ReplicaProcess, http: Http
) -> None:
    replica.configure(challenge=True, cookie_ttl_s=0.5)
    visitor, token = solve_like_a_browser(http, "/")
    cookies = cookie_header({**visitor, "incap_ses_1234_2927981": token})

    assert "__NEXT_DATA__" in http.request("/", headers=cookies)[2].decode()
    time.sleep(0.8)
    assert "Pardon Our Interruption" in http.request("/", headers=cookies)[2].decode()


def test_2024_challenge_passes_with_the_token_in_reese84(
    replica: ReplicaProcess, http: Http
) -> None:
    replica.configure(challenge=True, layout="2024")
    cookies, token = solve_like_a_browser(http, "/")
    assert {"visid_incap_2927981", "incap_ses_1234_2927981"} <= set(cookies)

    status, _, body = http.request("/", headers={"Cookie": f"reese84={token}"})

    assert status == 200
    assert next_data(body)["runtimeConfig"]["BFF_API_SUBSCRIPTION_KEY"]


@pytest.mark.parametrize("layout", ["2026", "2024"])
def test_challenge_mode_rejects_a_made_up_cookie(
    replica: ReplicaProcess, http: Http, layout: str
) -> None:
    replica.configure(challenge=True, layout=layout)
    name = "reese84" if layout == "2024" else "incap_ses_1234_2927981"

    for token in ("guess", "0123456789abcdef01234567.1f2e3d"):
        cookies = f"visid_incap_2927981=v; {name}={token}"
        body = http.request("/product/appy-fizz-250ml-8060378", headers={"Cookie": cookies})[2]
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
@pytest.mark.parametrize(
    ("layout", "token_cookie"), [("2026", "incap_ses_1234_2927981"), ("2024", "reese84")]
)
def test_challenge_cookie_is_set_by_running_the_page_script_in_chromium(
    replica: ReplicaProcess, http: Http, layout: str, token_cookie: str
) -> None:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"Chromium not found at {CHROMIUM} (set COLES_CHROMIUM_PATH)")
        pytest.skip(f"Chromium not found at {CHROMIUM}")
    from playwright.async_api import async_playwright

    replica.configure(challenge=True, layout=layout)
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
    jar = {c["name"]: c["value"] for c in cookies}
    assert token_cookie in jar
    assert any(name.startswith("visid_incap_") for name in jar)
    if layout == "2026":
        assert "nlbi_2927981" in jar
        assert "reese84" not in jar
    challenge = replica.stats()["challenge"]
    assert challenge["served"] >= 1
    assert challenge["scripts_served"] >= 1
    assert challenge["cookies_accepted"] == 1

    # The browser's cookies then work for a plain client too (how a crawler uses them).
    status, _, html = http.request("/product/appy-fizz-250ml-8060378", headers=cookie_header(jar))
    assert status == 200
    assert json_ld(html)["sku"] == 8060378


# -- block page -----------------------------------------------------------------------------------


BLOCK_MARKER = "Request unsuccessful. Incapsula incident ID"


def test_a_blocked_address_gets_the_real_block_page_and_another_address_the_site(
    replica: ReplicaProcess,
) -> None:
    replica.configure(block_clients=["127.0.0.2"])

    status, page = request_from("127.0.0.2", replica.url, "/")
    assert status == 200
    assert BLOCK_MARKER in page
    assert '<iframe src="/_Incapsula_Resource?' in page
    sample = (SAMPLES / "incapsula_block_page.html").read_text()
    incident = re.compile(r"0-\d{19}")
    assert incident.sub("ID", page) == incident.sub("ID", sample)

    status, page = request_from("127.0.0.1", replica.url, "/")
    assert status == 200
    assert "__NEXT_DATA__" in page
    stats = replica.stats()
    assert stats["blocked"] == 1
    assert stats["by_client"] == {"127.0.0.2": 1, "127.0.0.1": 1}


def test_the_block_page_covers_robots_txt_graphql_and_the_challenge_script_but_not_control(
    replica: ReplicaProcess,
) -> None:
    replica.configure(block_clients=["127.0.0.2"], block_status=503, challenge=True)

    for path in ("/robots.txt", "/product/appy-fizz-250ml-8060378", "/no/such/page",
                 "/Gone-our-Graught-but-your-did-on-bounds-Do-care-/0123456789abcdef01234567"):  # fmt: skip
        status, page = request_from("127.0.0.2", replica.url, path)
        assert (status, BLOCK_MARKER in page) == (503, True), path
        assert "Pardon Our Interruption" not in page  # blocked before any challenge
    status, page = request_from("127.0.0.2", replica.url, "/__replica__/stats")
    assert status == 200
    assert json.loads(page)["blocked"] == 4
    assert replica.stats()["challenge"]["served"] == 0


def test_block_after_lets_a_listed_client_have_n_content_answers_first(
    replica: ReplicaProcess,
) -> None:
    replica.configure(block_clients=["127.0.0.2"], block_after=1)

    assert "User-agent" in request_from("127.0.0.2", replica.url, "/robots.txt")[1]
    assert "__NEXT_DATA__" in request_from("127.0.0.2", replica.url, "/")[1]
    assert BLOCK_MARKER in request_from("127.0.0.2", replica.url, "/")[1]
    assert BLOCK_MARKER in request_from("127.0.0.2", replica.url, "/robots.txt")[1]


def test_command_line_options_set_layout_limits_rotation_and_blocked_clients() -> None:
    args = ["--max-aliases", "5", "--rotate-key-after", "7", "--block-clients",
            "127.0.0.2,127.0.0.3", "--block-clients", "127.0.0.4", "--block-status", "403"]  # fmt: skip
    with ReplicaProcess(products=30, layout="2024", args=args) as replica:
        config = replica.config()
        assert (config["layout"], config["max_aliases"], config["rotate_key_after"]) == (
            "2024", 5, 7
        )  # fmt: skip
        assert config["block_clients"] == ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
        assert request_from("127.0.0.3", replica.url, "/")[0] == 403
        assert "runtimeConfig" in request_from("127.0.0.1", replica.url, "/")[1]

    with ReplicaProcess(products=30) as replica:
        assert replica.config()["layout"] == "2026"
        assert "__RUNTIME_CONFIG__" in request_from("127.0.0.1", replica.url, "/")[1]


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
            else:  # a String field: numbers come as strings, a missing gtin as null
                assert record is not None
                held = product.gtin
                assert record["gtin"] == (None if held is MISSING or held is None else str(held))
