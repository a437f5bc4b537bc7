"""The retailer's page and JSON shapes, read from real samples of the site."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import graphql
import pytest

from colesbarcodes.site.coles import (
    KEY_IN_NEXT_DATA,
    KEY_IN_RUNTIME_CONFIG,
    PROTECTION_BLOCK,
    PROTECTION_CHALLENGE,
    CategoryTreeRefused,
    ProblemKind,
    SiteFormatError,
    categories_graphql_body,
    classify_errors,
    graphql_body,
    graphql_headers,
    is_block_page,
    is_bot_check,
    parse_category_tree,
    parse_graphql_category_tree,
    parse_product_page,
    parse_site_config,
    product_page_path,
    protection_kind,
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


def test_graphql_request_body_follows_the_contract() -> None:
    body = json.loads(graphql_body("8060378", "0584"))
    assert body["operationName"] == "GetProductDetails"
    assert body["variables"] == {"productId": "8060378", "storeId": "COL:0584"}
    document = graphql.parse(body["query"])
    assert "$productId: String!" in body["query"] and "$storeId: BrandedId!" in body["query"]
    assert "gtin" in graphql.print_ast(document)


def test_product_page_paths_end_with_the_sku() -> None:
    assert product_page_path("8060378", "Appy Fizz | 250mL") == "/product/appy-fizz-250ml-8060378"


KEY_2026 = "0123456789abcdef0123456789abcdef"
HOME_2026 = (
    "<html><head><script>window.__RUNTIME_CONFIG__={"
    '"COLES_ENV":"prod","BFF_API_SUBSCRIPTION_KEY":"' + KEY_2026 + '","NEXT_HOST_URL":'
    '"https://www.coles.com.au"};</script></head><body><script id="__NEXT_DATA__" '
    'type="application/json">{"props":{"pageProps":{}},"page":"/","buildId":'
    '"20261001.02_v5.1.0"}</script></body></html>'
).encode()


def test_the_2026_home_page_carries_the_key_in_an_inline_runtime_config_script() -> None:
    config = parse_site_config(HOME_2026, "https://www.coles.com.au/")
    assert config.api_key == KEY_2026
    assert config.key_source == KEY_IN_RUNTIME_CONFIG
    assert config.build_id == "20261001.02_v5.1.0"
    assert config.graphql_url == "https://www.coles.com.au/api/graphql"  # none published


def test_the_2024_page_still_gives_key_and_published_graphql_url(samples: Path) -> None:
    config = parse_site_config(
        (samples / "coles_product_page.html").read_bytes(), "https://www.coles.com.au/"
    )
    assert config.key_source == KEY_IN_NEXT_DATA
    assert config.graphql_url != "https://www.coles.com.au/api/graphql"  # the published one


def test_a_key_anywhere_in_the_page_is_the_last_resort() -> None:
    html = b'<script>self.cfg = {"BFF_API_SUBSCRIPTION_KEY": "' + KEY_2026.encode() + b'"}</script>'
    assert parse_site_config(html, "https://x.example/").api_key == KEY_2026


def test_a_page_without_any_key_names_where_it_looked() -> None:
    with pytest.raises(SiteFormatError, match="__RUNTIME_CONFIG__"):
        parse_site_config(b"<html><body>nothing</body></html>", "https://x.example/")


def test_graphql_requests_carry_the_headers_of_the_sites_own_client() -> None:
    headers = graphql_headers("https://www.coles.com.au/", KEY_2026)
    assert headers["ocp-apim-subscription-key"] == KEY_2026
    assert headers["x-api-version"] == "2"
    assert headers["dsch-channel"] == "coles.online.1site.desktop"
    assert headers["Origin"] == "https://www.coles.com.au"
    assert headers["Referer"] == "https://www.coles.com.au/"


def test_a_batched_document_asks_for_each_sku_under_its_own_alias() -> None:
    body = json.loads(graphql_body(["11", "22", "33"], "0584"))
    document = graphql.parse(body["query"])
    operation = document.definitions[0]
    assert isinstance(operation, graphql.OperationDefinitionNode)
    aliases = [
        sel.alias.value
        for sel in operation.selection_set.selections
        if isinstance(sel, graphql.FieldNode) and sel.alias
    ]
    assert aliases == ["p0", "p1", "p2"]
    assert body["variables"] == {"storeId": "COL:0584", "p0": "11", "p1": "22", "p2": "33"}
    assert body["operationName"] == "GetProductDetails"


def test_the_2025_product_page_json_ld_carries_the_gtin(samples: Path) -> None:
    html = (samples / "coles_product_page_jsonld_2025.html").read_bytes()
    record = parse_product_page(html, "6845664")
    assert record.gtin == "5410126676372"
    assert record.name == "Lotus Biscoff Sandwich Biscuits Vanilla"
    with pytest.raises(SiteFormatError):
        parse_product_page(html, "1234567")  # never another SKU's record


@pytest.mark.parametrize("key", ["gtin", "gtin13", "gtin14", "gtin12", "gtin8"])
def test_every_json_ld_gtin_key_is_read(key: str) -> None:
    ld = {"@context": "https://schema.org", "@graph": [{"@type": "Product", "sku": 5, key: "0042"}]}
    html = f'<script type="application/ld+json">{json.dumps(ld)}</script>'.encode()
    assert parse_product_page(html, "5").gtin == "0042"


def test_the_block_page_is_not_the_challenge(samples: Path) -> None:
    block = (samples / "incapsula_block_page.html").read_bytes()
    challenge = (samples / "coles_bot_check_page.html").read_bytes()
    assert is_block_page(block) and not is_bot_check(block)
    assert protection_kind(block) == PROTECTION_BLOCK
    assert protection_kind(challenge) == PROTECTION_CHALLENGE
    assert not is_block_page(challenge)
    for content in ("coles_product_page.html", "coles_listing_page_small.json"):
        assert protection_kind((samples / content).read_bytes()) is None


def test_the_graphql_category_tree_reads_like_the_old_route(samples: Path) -> None:
    old = json.loads((samples / "coles_browse_categories.json").read_bytes())
    groups = old["pageProps"]["allProductCategories"]

    def aliased(nodes: list[dict[str, object]]) -> list[dict[str, object]]:
        out = []
        for node in nodes:
            copy = {k: v for k, v in node.items() if k != "catalogGroupView"}
            children = node.get("catalogGroupView")
            if isinstance(children, list):
                copy["childItems"] = aliased(children)
            out.append(copy)
        return out

    answer = {
        "data": {
            "menuItems": {
                "items": aliased(groups["catalogGroupView"]),
                "restrictedIds": groups["excludedCategoryIds"],
            }
        }
    }
    tree = parse_graphql_category_tree(json.dumps(answer).encode())
    assert tree == parse_category_tree((samples / "coles_browse_categories.json").read_bytes())
    body = json.loads(categories_graphql_body("0584"))
    assert body["operationName"] == "GetShopProductsMenu"
    assert body["variables"]["storeId"] == "COL:0584"
    graphql.parse(body["query"])
    with pytest.raises(SiteFormatError):
        parse_graphql_category_tree(b'{"errors": [{"message": "Cannot query field"}]}')


def test_the_menu_document_declares_what_the_sites_own_query_declares() -> None:
    """A server validates the document before it runs it: the variable types and the
    fragments' type names must be the site's (README, late-2026 fact 4), not near ones."""
    body = json.loads(categories_graphql_body("0584"))
    document = graphql.parse(body["query"])
    (operation,) = [
        d for d in document.definitions if isinstance(d, graphql.OperationDefinitionNode)
    ]
    declared = {
        v.variable.name.value: graphql.print_ast(v.type)
        for v in operation.variable_definitions or ()
    }
    assert declared == {
        "storeId": "BrandedId!",
        "withCampaignLinks": "Boolean!",
        "campaignCount": "Int",
    }
    assert set(body["variables"]) == set(declared)
    fragments = {
        d.type_condition.name.value
        for d in document.definitions
        if isinstance(d, graphql.FragmentDefinitionNode)
    }
    assert fragments == {"ProductCategories", "ProductCategory"}


def test_a_refused_menu_document_is_named_in_the_servers_words() -> None:
    refused = json.dumps(
        {
            "errors": [
                {
                    "message": "Unknown type 'ProductCategory'.",
                    "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"},
                }
            ]
        }
    ).encode()
    with pytest.raises(CategoryTreeRefused) as caught:
        parse_graphql_category_tree(refused, 400)
    assert str(caught.value) == (
        "GraphQL refused GetShopProductsMenu: Unknown type 'ProductCategory'."
    )
    assert caught.value.site_changed
    with pytest.raises(CategoryTreeRefused) as caught:
        parse_graphql_category_tree(b"<html>Service Unavailable</html>", 503)
    assert str(caught.value) == "GraphQL failed GetShopProductsMenu: HTTP 503"
    assert not caught.value.site_changed  # a failing server is not a changed site


def test_a_too_complex_refusal_may_state_the_limit() -> None:
    stated = classify_errors(
        [{"message": "Query is too complex: 30 product lookups exceed the limit of 24."}], 400
    )
    assert stated.kind == ProblemKind.TOO_COMPLEX and stated.stated_limit == 24
    assert classify_errors([{"message": "Query is too complex"}], 400).stated_limit is None
