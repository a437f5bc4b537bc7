"""The replica breaks one point of the site contract on purpose (``--break MODE``), as the real
site changes: each mode breaks its point for the crawl's own parser, and only that point."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from typing import TYPE_CHECKING

import pytest

from colesbarcodes.coles_site import (
    SiteFormatError,
    categories_graphql_body,
    categories_path,
    graphql_body,
    graphql_headers,
    listing_path,
    parse_build_id,
    parse_graphql_category_tree,
    parse_graphql_products,
    parse_site_config,
)
from colesbarcodes.replica import Catalogue, ReplicaProcess

if TYPE_CHECKING:
    from collections.abc import Iterator

KEY = "fedcba9876543210fedcba9876543210"
BUILD_ID = "20261101.01_v5.2.0"
PRODUCTS = 200
SKU = str(next(p.sku for p in Catalogue.generate(PRODUCTS, seed=1) if p.expected_gtin))


def fetch(url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> bytes:
    request = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return bytes(response.read())
    except urllib.error.HTTPError as error:
        return bytes(error.read()) if error.code != 404 else b"404"


def graphql(site: ReplicaProcess, body: bytes) -> bytes:
    return fetch(f"{site.url}/api/graphql", body, graphql_headers(site.url, KEY))


@pytest.fixture(scope="module")
def site() -> Iterator[ReplicaProcess]:
    args = ["--api-key", KEY, "--build-id", BUILD_ID]
    with ReplicaProcess(products=PRODUCTS, seed=1, args=args) as replica:
        yield replica


@pytest.fixture(autouse=True)
def unbroken(site: ReplicaProcess) -> Iterator[None]:
    yield
    site.configure(breaks=[], layout="2026")


@pytest.mark.parametrize("layout", ["2026", "2024"])
def test_key_moved_takes_the_key_out_of_the_page_into_a_script(
    site: ReplicaProcess, layout: str
) -> None:
    site.configure(breaks=["key-moved"], layout=layout)
    home = fetch(f"{site.url}/")
    assert b"BFF_API_SUBSCRIPTION_KEY" not in home and KEY.encode() not in home
    with pytest.raises(SiteFormatError):
        parse_site_config(home, f"{site.url}/")
    assert parse_build_id(home) == BUILD_ID  # only the key moved
    script = re.search(rb'<script src="(/_next/static/chunks/env-[0-9a-f]+\.js)"', home)
    assert script is not None
    assert KEY.encode() in fetch(site.url + script.group(1).decode())
    answer = parse_graphql_products(graphql(site, graphql_body([SKU], "0584")), [SKU])
    assert SKU in answer.records  # the API still takes the key


def test_build_id_missing_leaves_the_key_and_the_routes(site: ReplicaProcess) -> None:
    site.configure(breaks=["build-id-missing"])
    home = fetch(f"{site.url}/")
    with pytest.raises(SiteFormatError, match="no buildId"):
        parse_build_id(home)
    assert parse_site_config(home, f"{site.url}/").api_key == KEY
    assert b"pageProps" in fetch(site.url + categories_path(BUILD_ID))


def test_operation_renamed_fails_get_product_details_validation_only(
    site: ReplicaProcess,
) -> None:
    site.configure(breaks=["operation-renamed"])
    answer = parse_graphql_products(graphql(site, graphql_body([SKU], "0584")), [SKU], 400)
    assert answer.problem is not None
    assert "Cannot query field 'product'" in answer.problem.message
    tree = parse_graphql_category_tree(graphql(site, categories_graphql_body("0584")))
    assert len(tree) >= 5


def test_gtin_removed_answers_records_without_gtin(site: ReplicaProcess) -> None:
    site.configure(breaks=["gtin-removed"])
    answer = parse_graphql_products(graphql(site, graphql_body([SKU], "0584")), [SKU])
    record = answer.records[SKU]
    assert record.has_gtin_field and record.gtin is None
    assert record.name  # the rest of the record is there


def test_categories_moved_breaks_both_tree_sources_but_not_the_listings(
    site: ReplicaProcess,
) -> None:
    site.configure(breaks=["categories-moved"])
    with pytest.raises(SiteFormatError):
        parse_graphql_category_tree(graphql(site, categories_graphql_body("0584")))
    assert fetch(site.url + categories_path(BUILD_ID)) == b"404"
    site.configure(breaks=[])
    tree = parse_graphql_category_tree(graphql(site, categories_graphql_body("0584")))
    site.configure(breaks=["categories-moved"])
    listing = fetch(site.url + listing_path(BUILD_ID, tree[0].path, 1, "0584"))
    assert b"searchResults" in listing


def test_breaks_are_cleared_at_runtime_and_unknown_ones_refused(site: ReplicaProcess) -> None:
    site.configure(breaks=["key-moved", "gtin-removed"])
    site.configure(breaks=[])
    assert parse_site_config(fetch(f"{site.url}/"), f"{site.url}/").api_key == KEY
    request = urllib.request.Request(
        f"{site.url}/__replica__/config",
        data=b'{"breaks": ["site-on-fire"]}',
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 400
    assert b"modes are key-moved" in refused.value.read()
