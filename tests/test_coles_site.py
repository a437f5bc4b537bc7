"""The retailer's page and JSON shapes, read from real samples of the site."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from colesbarcodes.coles_site import (
    SiteFormatError,
    graphql_body,
    is_bot_check,
    parse_graphql_product,
    parse_product_page,
    parse_site_config,
    product_page_path,
)

if TYPE_CHECKING:
    from pathlib import Path


def test_site_config_comes_from_the_pages_runtime_config(samples: Path) -> None:
    config = parse_site_config(
        (samples / "coles_product_page.html").read_bytes(),
        "https://www.coles.com.au/product/x-8060378",
    )
    assert config.build_id == "20241015.01_v4.24.0"
    assert config.api_key == "eae83861d1cd4de6bb9cd8a2cd6f041e"
    assert config.graphql_url.startswith("https://")


def test_the_bot_check_page_is_recognised_and_real_pages_are_not(samples: Path) -> None:
    assert is_bot_check((samples / "coles_bot_check_page.html").read_bytes())
    assert not is_bot_check((samples / "coles_product_page.html").read_bytes())
    assert not is_bot_check((samples / "coles_listing_page_small.json").read_bytes())


def test_a_product_page_is_trusted_only_for_the_sku_asked_for(samples: Path) -> None:
    """The real page's __NEXT_DATA__ holds SKU 6433306 while its URL and JSON-LD say 8060378."""
    html = (samples / "coles_product_page.html").read_bytes()
    asked = parse_product_page(html, "8060378")
    assert asked.sku == "8060378"
    assert asked.name == "Appy Fizz"  # from the JSON-LD, not from the other SKU's record
    assert asked.brand == "Appy"
    assert asked.gtin is None  # the product page carries no GTIN
    other = parse_product_page(html, "6433306")
    assert other.sku == "6433306"
    with pytest.raises(SiteFormatError):
        parse_product_page(html, "1234567")


def test_graphql_product_records_and_their_gtin_shapes() -> None:
    record = parse_graphql_product(
        json.dumps(
            {"data": {"product": {"id": 42, "name": "Milk", "gtin": 9300633600082}}}
        ).encode(),
        "42",
    )
    assert record is not None and record.gtin == 9300633600082 and record.has_gtin_field
    no_field = parse_graphql_product(b'{"data": {"product": {"id": "42", "name": "Milk"}}}', "42")
    assert no_field is not None and not no_field.has_gtin_field and no_field.gtin is None
    assert (
        parse_graphql_product(b'{"data": {"product": null}}', "42") is None
    )  # unknown or delisted


@pytest.mark.parametrize(
    "body",
    [
        b"<html>not json</html>",
        b'{"errors": [{"message": "boom"}]}',
        b'{"data": {"product": {"id": 7}}}',
        b'{"data": {"product": []}}',
    ],
)
def test_unusable_graphql_answers_raise(body: bytes) -> None:
    with pytest.raises(SiteFormatError):
        parse_graphql_product(body, "42")


def test_graphql_request_body_follows_the_contract() -> None:
    body = json.loads(graphql_body("8060378", "0584"))
    assert body["operationName"] == "GetProduct"
    assert body["variables"] == {"productId": "8060378", "storeId": "COL:0584"}
    assert "gtin" in body["query"]


def test_product_page_paths_end_with_the_sku() -> None:
    assert product_page_path("8060378", "Appy Fizz | 250mL") == "/product/appy-fizz-250ml-8060378"
