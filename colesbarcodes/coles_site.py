"""Everything the project knows about the shape of the retailer's pages and JSON.

Pure functions, no Scrapy: the one small, replaceable place to change when the live
site changes. What the site is known to serve (see the README's "The retailer's site"):

* ``GET /`` (and every page): ``<script id="__NEXT_DATA__">`` with ``buildId`` and
  ``runtimeConfig`` carrying ``BFF_API_SUBSCRIPTION_KEY`` and ``COLES_GRAPHQL_API_URL``;
* ``POST {COLES_GRAPHQL_API_URL}`` ``GetProduct`` → ``{"data": {"product": {..., "gtin"}}}``;
  ``{"data": {"product": null}}`` for an unknown or delisted SKU;
* ``GET /product/{slug}-{sku}``: the product in ``__NEXT_DATA__`` ``props.pageProps.product``
  and a schema.org JSON-LD ``Product`` (no GTIN so far; read if it ever appears);
* Imperva's "Pardon Our Interruption" bot check, served instead of any of these.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import orjson

__all__ = [
    "BOT_CHECK_COOKIE_PREFIXES",
    "GRAPHQL_QUERY",
    "ProductRecord",
    "SiteConfig",
    "SiteFormatError",
    "graphql_body",
    "is_bot_check",
    "parse_graphql_product",
    "parse_next_data",
    "parse_product_page",
    "parse_site_config",
    "product_page_path",
]

BOT_CHECK_COOKIE_PREFIXES = ("visid_incap_", "incap_ses_", "nlbi_", "reese84")
_BOT_CHECK_MARKERS = (
    b"Pardon Our Interruption",
    b"onProtectionInitialized",
    b"reeseSkipExpirationCheck",
    b"_Incapsula_Resource",
)
_NEXT_DATA_RE = re.compile(
    rb'<script[^>]*\bid="__NEXT_DATA__"[^>]*>(.*?)</script>', re.DOTALL | re.IGNORECASE
)
_JSON_LD_RE = re.compile(
    rb'<script[^>]*type="application/ld\+json"[^>]*>(.*?)</script>', re.DOTALL | re.IGNORECASE
)
_SLUG_RE = re.compile(r"[^a-z0-9]+")

GRAPHQL_QUERY = (
    "query GetProduct($productId: ID!, $storeId: ID!) { product(productId: $productId, "
    "storeId: $storeId) { id name brand description size gtin availability "
    "pricing { now was } } }"
)


class SiteFormatError(ValueError):
    """A page or JSON document that does not have the shape the site is known to serve."""


@dataclass(frozen=True, slots=True)
class SiteConfig:
    build_id: str
    api_key: str
    graphql_url: str


@dataclass(frozen=True, slots=True)
class ProductRecord:
    """What the site says about one SKU; ``gtin`` is the raw value, not validated yet."""

    sku: str
    name: str | None = None
    brand: str | None = None
    size: str | None = None
    gtin: object = None
    has_gtin_field: bool = False


def is_bot_check(body: bytes) -> bool:
    """True for the bot-check page, whatever status and content type it came with."""
    head = body[:20_000]
    return sum(marker in head for marker in _BOT_CHECK_MARKERS) >= 2


def parse_next_data(html: bytes) -> dict[str, Any]:
    match = _NEXT_DATA_RE.search(html)
    if match is None:
        raise SiteFormatError("no __NEXT_DATA__ script in the page")
    try:
        data = orjson.loads(match.group(1))
    except orjson.JSONDecodeError as exc:
        raise SiteFormatError(f"__NEXT_DATA__ is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SiteFormatError("__NEXT_DATA__ is not an object")
    return data


def parse_site_config(html: bytes, page_url: str) -> SiteConfig:
    """The build id, API key and GraphQL URL that the site's own pages publish."""
    data = parse_next_data(html)
    runtime = data.get("runtimeConfig") or {}
    key = runtime.get("BFF_API_SUBSCRIPTION_KEY")
    graphql = runtime.get("COLES_GRAPHQL_API_URL")
    if not isinstance(key, str) or not key or not isinstance(graphql, str) or not graphql:
        raise SiteFormatError(
            "runtimeConfig lacks BFF_API_SUBSCRIPTION_KEY or COLES_GRAPHQL_API_URL"
        )
    return SiteConfig(str(data.get("buildId") or ""), key, urljoin(page_url, graphql))


def graphql_body(sku: str, store_id: str) -> bytes:
    return orjson.dumps(
        {
            "operationName": "GetProduct",
            "variables": {"productId": str(sku), "storeId": f"COL:{store_id}"},
            "query": GRAPHQL_QUERY,
        }
    )


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _record(sku: str, product: dict[str, Any]) -> ProductRecord:
    return ProductRecord(
        sku=sku,
        name=_text(product.get("name")),
        brand=_text(product.get("brand")),
        size=_text(product.get("size")),
        gtin=product.get("gtin"),
        has_gtin_field="gtin" in product,
    )


def parse_graphql_product(body: bytes, sku: str) -> ProductRecord | None:
    """The product record for ``sku``; ``None`` when the site says it does not exist.

    A record for another SKU is not trusted (raises), nor is a body without ``data``.
    """
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise SiteFormatError(f"GraphQL answer is not JSON: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("data"), dict):
        errors = document.get("errors") if isinstance(document, dict) else None
        raise SiteFormatError(f"GraphQL answer without data: {errors!r}"[:300])
    product = document["data"].get("product")
    if product is None:
        return None
    if not isinstance(product, dict):
        raise SiteFormatError("GraphQL product is not an object")
    if "id" in product and str(product["id"]) != str(sku):
        raise SiteFormatError(f"GraphQL answered for SKU {product['id']}, not {sku}")
    return _record(sku, product)


def parse_product_page(html: bytes, sku: str) -> ProductRecord:
    """The product of a product page, trusting only a record for the SKU that was asked for.

    The real site has been seen serving a page whose ``__NEXT_DATA__`` product is another
    SKU than its URL and JSON-LD: such a record is ignored, and the JSON-LD used instead.
    """
    product: dict[str, Any] = {}
    try:
        page_product = parse_next_data(html).get("props", {}).get("pageProps", {}).get("product")
    except SiteFormatError:
        page_product = None
    if isinstance(page_product, dict) and str(page_product.get("id")) == str(sku):
        product = dict(page_product)
    for match in _JSON_LD_RE.finditer(html):
        try:
            ld = orjson.loads(match.group(1))
        except orjson.JSONDecodeError:
            continue
        if (
            not isinstance(ld, dict)
            or ld.get("@type") != "Product"
            or str(ld.get("sku")) != str(sku)
        ):
            continue
        for key in ("gtin13", "gtin14", "gtin12", "gtin8", "gtin"):
            if ld.get(key) and not product.get("gtin"):
                product["gtin"] = ld[key]
        if not product.get("name") and isinstance(ld.get("name"), str):
            product["name"] = ld["name"].split(" | ")[0]
        brand = ld.get("brand")
        if not product.get("brand") and isinstance(brand, dict):
            product["brand"] = brand.get("name")
    if not product:
        raise SiteFormatError(f"no product record for SKU {sku} in the page")
    return _record(sku, product)


def product_page_path(sku: str, name: str | None = None) -> str:
    """``/product/{slug}-{sku}``; the site redirects any slug to the right one."""
    slug = _SLUG_RE.sub("-", (name or "product").lower()).strip("-") or "product"
    return f"/product/{slug}-{sku}"
