"""The replica breaks one point of the site contract on purpose (``--break MODE``), as the real
site changes: each mode breaks its point for the crawl's own parser, and only that point, so
that ``scrapy site-check`` can be tested against each failure it exists for."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from typing import TYPE_CHECKING

import pytest

from colesbarcodes.replica import Catalogue, ReplicaProcess
from colesbarcodes.site.coles import (
    CategoryTreeRefused,
    ProductRecord,
    Reading,
    SiteFormatError,
    categories_graphql_body,
    categories_path,
    graphql_body,
    graphql_headers,
    listing_path,
    parse_build_id,
    parse_category_tree,
    parse_graphql_category_tree,
    parse_graphql_products,
    parse_listing,
    parse_next_data,
    parse_product_page,
    parse_site_config,
    product_page_path,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

KEY = "fedcba9876543210fedcba9876543210"
BUILD_ID = "20261101.01_v5.2.0"
PRODUCTS = 200
CATALOGUE = Catalogue.generate(PRODUCTS, seed=1)
PRODUCT = next(p for p in CATALOGUE.products.values() if p.expected_gtin)
SKU = str(PRODUCT.sku)
OTHER = str(next(p.sku for p in CATALOGUE.products.values() if p.expected_gtin and p != PRODUCT))
LAYOUTS = ["2026", "2024"]
KEY_SCRIPT = re.compile(rb'<script src="(/_next/static/chunks/env-[0-9a-f]+\.js)"')


def fetch(
    url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """(status, body) of one real HTTP request, whatever the status."""
    request = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, bytes(response.read())
    except urllib.error.HTTPError as error:
        return error.code, bytes(error.read())


def page(site: ReplicaProcess, path: str = "/") -> bytes:
    status, body = fetch(site.url + path)
    assert status == 200, body[:300]
    return body


def graphql(site: ReplicaProcess, body: bytes, key: str = KEY) -> tuple[int, bytes]:
    """POST a document with the headers the site's own client sends."""
    return fetch(f"{site.url}/api/graphql", body, graphql_headers(site.url, key))


def a_listing_path(site: ReplicaProcess) -> str:
    """The fullest department's listing path, from the unbroken site's ``browse.json``."""
    tree = parse_category_tree(page(site, categories_path(BUILD_ID)))
    return max(tree, key=lambda category: category.product_count or 0).path


@pytest.fixture(scope="module")
def site() -> Iterator[ReplicaProcess]:
    args = ["--api-key", KEY, "--build-id", BUILD_ID]
    with ReplicaProcess(products=PRODUCTS, seed=1, args=args) as replica:
        yield replica


@pytest.fixture(autouse=True)
def unbroken(site: ReplicaProcess) -> Iterator[None]:
    site.configure(breaks=[], layout="2026", page_gtin=False)
    yield
    site.configure(breaks=[], layout="2026", page_gtin=False)


def record_of(body: bytes, skus: list[str], status: int = 200) -> ProductRecord:
    """The product record the answer gives for ``SKU`` (which must have one)."""
    record = parse_graphql_products(body, skus, status).readings[SKU].record
    assert record is not None, body[:300]
    return record


def found(body: bytes, skus: list[str]) -> bool:
    return parse_graphql_products(body, skus).readings[SKU].reading is Reading.FOUND


# -- key-moved ----------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
def test_key_moved_takes_the_key_out_of_the_page_into_a_script(
    site: ReplicaProcess, layout: str
) -> None:
    site.configure(breaks=["key-moved"], layout=layout)
    home = page(site)
    assert b"BFF_API_SUBSCRIPTION_KEY" not in home and KEY.encode() not in home
    assert "runtimeConfig" not in parse_next_data(home)
    with pytest.raises(SiteFormatError, match="no BFF_API_SUBSCRIPTION_KEY"):
        parse_site_config(home, f"{site.url}/")
    assert parse_build_id(home) == BUILD_ID  # only the key moved

    script = KEY_SCRIPT.search(home)
    assert script is not None
    body = page(site, script.group(1).decode())
    assert body == f'self.__ENV={{"apimSubscriptionKey":"{KEY}"}};'.encode()
    key = re.search(rb'"apimSubscriptionKey":"([0-9a-f]{32})"', body)
    assert key is not None
    status, answer = graphql(site, graphql_body([SKU], "0584"), key.group(1).decode())
    assert status == 200
    assert found(answer, [SKU])  # the API still takes it


@pytest.mark.parametrize("layout", LAYOUTS)
def test_key_moved_is_site_wide_product_pages_carry_no_key_either(
    site: ReplicaProcess, layout: str
) -> None:
    site.configure(breaks=["key-moved"], layout=layout)
    product_page = page(site, product_page_path(SKU, PRODUCT.name))
    assert b"BFF_API_SUBSCRIPTION_KEY" not in product_page and KEY.encode() not in product_page
    assert KEY_SCRIPT.search(product_page) is not None
    assert parse_product_page(product_page, SKU).name  # the page itself is unchanged


def test_the_key_script_is_not_there_while_the_key_is_in_the_page(site: ReplicaProcess) -> None:
    site.configure(breaks=["key-moved"])
    script = KEY_SCRIPT.search(page(site))
    assert script is not None
    site.configure(breaks=[])
    assert KEY_SCRIPT.search(page(site)) is None
    assert fetch(site.url + script.group(1).decode())[0] == 404


# -- build-id-missing ---------------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
def test_build_id_missing_leaves_the_key_and_the_routes(site: ReplicaProcess, layout: str) -> None:
    path = a_listing_path(site)
    site.configure(breaks=["build-id-missing"], layout=layout)
    home = page(site)
    with pytest.raises(SiteFormatError, match="no buildId"):
        parse_build_id(home)
    assert "buildId" not in parse_next_data(home)
    assert parse_site_config(home, f"{site.url}/").api_key == KEY
    with pytest.raises(SiteFormatError, match="no buildId"):
        parse_build_id(page(site, product_page_path(SKU, PRODUCT.name)))
    assert parse_category_tree(page(site, categories_path(BUILD_ID)))
    assert parse_listing(page(site, listing_path(BUILD_ID, path, 1, "0584")), path).products


# -- operation-renamed --------------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
def test_operation_renamed_fails_get_product_details_validation(
    site: ReplicaProcess, layout: str
) -> None:
    site.configure(breaks=["operation-renamed"], layout=layout)
    status, body = graphql(site, graphql_body([SKU], "0584"))
    assert status == 400
    error = json.loads(body)["errors"][0]
    assert error["message"].startswith("Cannot query field 'product' on type 'Query'.")
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    answer = parse_graphql_products(body, [SKU], status)
    assert answer.problem is not None and not answer.readings
    assert "Cannot query field 'product'" in answer.problem.message


def test_operation_renamed_leaves_the_categories_and_serves_the_new_name(
    site: ReplicaProcess,
) -> None:
    site.configure(breaks=["operation-renamed"])
    status, body = graphql(site, categories_graphql_body("0584"))
    assert status == 200 and len(parse_graphql_category_tree(body)) >= 5
    site.reset_stats()
    skus = [SKU, OTHER]  # aliased p0, p1: the answer reads as before under the new name
    renamed = graphql_body(skus, "0584").replace(b": product(", b": productDetails(")
    status, body = graphql(site, renamed)
    assert status == 200, body[:300]
    assert record_of(body, skus).gtin == PRODUCT.expected_gtin
    assert site.stats()["by_sku_kind"]["graphql"] == {SKU: 1, OTHER: 1}  # still counted


# -- gtin-removed -------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
def test_gtin_removed_answers_records_without_gtin(site: ReplicaProcess, layout: str) -> None:
    site.configure(breaks=["gtin-removed"], layout=layout, page_gtin=True)
    status, body = graphql(site, graphql_body([SKU], "0584"))
    assert status == 200
    record = record_of(body, [SKU])
    assert record.has_gtin_field and record.gtin is None
    assert record.name  # the rest of the record is there
    product_page = page(site, product_page_path(SKU, PRODUCT.name))
    assert parse_product_page(product_page, SKU).gtin == PRODUCT.expected_gtin  # pages unchanged


# -- categories-moved ---------------------------------------------------------------------------


def test_categories_moved_breaks_both_tree_sources_but_not_the_listings(
    site: ReplicaProcess,
) -> None:
    path = a_listing_path(site)
    site.configure(breaks=["categories-moved"])
    status, body = graphql(site, categories_graphql_body("0584"))
    assert status == 400
    with pytest.raises(CategoryTreeRefused) as refused:
        parse_graphql_category_tree(body, status)
    assert str(refused.value) == (
        "GraphQL refused GetShopProductsMenu: "
        "Cannot query field 'productCategories' on type 'Query'."
    )
    assert fetch(site.url + categories_path(BUILD_ID))[0] == 404
    assert parse_listing(page(site, listing_path(BUILD_ID, path, 1, "0584")), path).products
    status, body = graphql(site, graphql_body([SKU], "0584"))
    assert status == 200 and found(body, [SKU])


def test_categories_moved_in_2024_takes_browse_json_away(site: ReplicaProcess) -> None:
    path = a_listing_path(site)
    site.configure(breaks=["categories-moved"], layout="2024")
    assert fetch(site.url + categories_path(BUILD_ID))[0] == 404
    assert parse_listing(page(site, listing_path(BUILD_ID, path, 1, "0584")), path).products


# -- categories-retyped -------------------------------------------------------------------------


def test_categories_retyped_refuses_the_sites_own_menu_document_whole(
    site: ReplicaProcess,
) -> None:
    """The crawl's document declares what the site's own query declares; a schema that
    declares the node type otherwise refuses it before running anything."""
    path = a_listing_path(site)
    status, body = graphql(site, categories_graphql_body("0584"))
    assert status == 200 and len(parse_graphql_category_tree(body)) >= 5
    site.configure(breaks=["categories-retyped"])
    status, body = graphql(site, categories_graphql_body("0584"))
    assert status == 400
    answer = json.loads(body)
    assert "data" not in answer
    assert {e["extensions"]["code"] for e in answer["errors"]} == {"GRAPHQL_VALIDATION_FAILED"}
    with pytest.raises(CategoryTreeRefused, match="Unknown type 'ProductCategory'") as refused:
        parse_graphql_category_tree(body, status)
    assert refused.value.site_changed
    assert fetch(site.url + categories_path(BUILD_ID))[0] == 404
    assert parse_listing(page(site, listing_path(BUILD_ID, path, 1, "0584")), path).products
    status, body = graphql(site, graphql_body([SKU], "0584"))
    assert status == 200 and found(body, [SKU])


def test_categories_retyped_in_2024_takes_browse_json_away(site: ReplicaProcess) -> None:
    path = a_listing_path(site)
    site.configure(breaks=["categories-retyped"], layout="2024")
    assert fetch(site.url + categories_path(BUILD_ID))[0] == 404
    assert parse_listing(page(site, listing_path(BUILD_ID, path, 1, "0584")), path).products


# -- switching breaks on and off ----------------------------------------------------------------


def test_breaks_combine_and_are_cleared_at_runtime(site: ReplicaProcess) -> None:
    config = site.configure(breaks=["key-moved", "gtin-removed,key-moved"])
    assert config["breaks"] == ["key-moved", "gtin-removed"]
    with pytest.raises(SiteFormatError):
        parse_site_config(page(site), f"{site.url}/")
    assert site.configure(breaks=[])["breaks"] == []
    assert parse_site_config(page(site), f"{site.url}/").api_key == KEY
    status, body = graphql(site, graphql_body([SKU], "0584"))
    assert record_of(body, [SKU], status).gtin == PRODUCT.expected_gtin


def test_an_unknown_mode_is_refused_with_the_valid_ones(site: ReplicaProcess) -> None:
    status, body = fetch(
        f"{site.url}/__replica__/config",
        json.dumps({"breaks": ["key-moved", "site-on-fire"]}).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 400
    error = json.loads(body)["error"]
    assert "site-on-fire" in error
    for mode in (
        "key-moved",
        "build-id-missing",
        "operation-renamed",
        "gtin-removed",
        "categories-moved",
        "categories-retyped",
    ):
        assert mode in error
    assert site.config()["breaks"] == []  # nothing applied


def test_break_flags_at_start_up_repeat_and_take_comma_lists() -> None:
    args = ["--break", "key-moved,gtin-removed", "--break", "categories-moved", "--layout", "2024"]
    with ReplicaProcess(products=50, seed=1, args=args) as replica:
        config = replica.config()
        assert config["breaks"] == ["key-moved", "gtin-removed", "categories-moved"]
        assert config["layout"] == "2024"
        assert b"BFF_API_SUBSCRIPTION_KEY" not in page(replica)


def test_an_unknown_mode_at_start_up_stops_the_replica_naming_the_valid_ones() -> None:
    with pytest.raises(RuntimeError, match="modes are key-moved, build-id-missing"):
        ReplicaProcess(products=10, args=["--break", "key-moved,site-on-fire"]).start()
