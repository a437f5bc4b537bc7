"""Everything the project knows about the shape of the retailer's pages and JSON.

Pure functions, no Scrapy: the one small, replaceable place to change when the live
site changes. What the site is known to serve (see the README's "The retailer's site"):

* ``GET /`` (and every page): ``<script id="__NEXT_DATA__">`` with ``buildId`` and
  ``runtimeConfig`` carrying ``BFF_API_SUBSCRIPTION_KEY`` and ``COLES_GRAPHQL_API_URL``;
* ``POST {COLES_GRAPHQL_API_URL}`` ``GetProduct`` → ``{"data": {"product": {..., "gtin"}}}``;
  ``{"data": {"product": null}}`` for an unknown or delisted SKU;
* ``GET /product/{slug}-{sku}``: the product in ``__NEXT_DATA__`` ``props.pageProps.product``
  and a schema.org JSON-LD ``Product`` (no GTIN so far; read if it ever appears);
* ``GET /_next/data/{buildId}/en/browse.json``: the category tree
  (``pageProps.allProductCategories.catalogGroupView``, nested, with ``seoToken`` and
  ``productCount``);
* ``GET /_next/data/{buildId}/en/browse/{path}.json?slug={path}&page=N&storeId=0584``: a
  listing page (``pageProps.searchResults``: ``noOfResults``, ``results[]`` with product rows
  and ad rows); 48 rows a page and no page past 104; a stale ``buildId`` answers 404;
* Imperva's "Pardon Our Interruption" bot check, served instead of any of these.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urljoin

import orjson

__all__ = [
    "BOT_CHECK_COOKIE_PREFIXES",
    "GRAPHQL_QUERY",
    "Category",
    "ListingPage",
    "ProductRecord",
    "SiteConfig",
    "SiteFormatError",
    "categories_path",
    "graphql_body",
    "is_bot_check",
    "listing_line",
    "listing_page_count",
    "listing_path",
    "listing_plan",
    "parse_build_id",
    "parse_category_tree",
    "parse_graphql_product",
    "parse_listing",
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


# -- Listings -----------------------------------------------------------------------------

PRODUCT_ROW = "PRODUCT"
_MAX_TEXT = 1000  # the loader quarantines longer texts (colesbarcodes.lines)
_MAX_MONEY = 1e9  # and absurd prices


@dataclass(frozen=True, slots=True)
class Category:
    """A node of the browse tree; ``path`` is its listing path (``pantry/cereal``)."""

    path: str
    name: str | None = None
    product_count: int | None = None
    children: tuple[Category, ...] = ()

    @property
    def seo_token(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True, slots=True)
class ListingPage:
    """One listing page: the category's size, its product rows (ads left out) and the
    sub-categories it names (to walk when the category is too big to list whole)."""

    total: int
    page_size: int | None
    products: list[dict[str, Any]]
    other_rows: int
    children: tuple[Category, ...]


def _json_object(body: bytes, what: str) -> dict[str, Any]:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise SiteFormatError(f"{what} is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise SiteFormatError(f"{what} is not a JSON object")
    return document


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_build_id(html: bytes) -> str:
    """The Next.js ``buildId`` every ``/_next/data/`` URL needs (from any page's
    ``__NEXT_DATA__``); it changes with each deployment of the site."""
    build_id = parse_next_data(html).get("buildId")
    if not isinstance(build_id, str) or not build_id.strip():
        raise SiteFormatError("__NEXT_DATA__ has no buildId")
    return build_id.strip()


def categories_path(build_id: str) -> str:
    """Path of the category tree document for this build."""
    return f"/_next/data/{quote(build_id, safe='')}/en/browse.json"


def listing_path(build_id: str, path: str, page: int, store_id: str) -> str:
    """Path and query of one listing page of one store."""
    category = quote(path.strip("/"), safe="/")
    return (
        f"/_next/data/{quote(build_id, safe='')}/en/browse/{category}.json"
        f"?slug={category}&page={page}&storeId={quote(store_id, safe='')}"
    )


def _categories(nodes: Any, parent: str) -> tuple[Category, ...]:
    found = []
    for node in nodes if isinstance(nodes, list) else ():
        if not isinstance(node, dict):
            continue
        token = node.get("seoToken")
        if not isinstance(token, str) or not token.strip("/ "):
            continue
        token = token.strip("/ ")
        path = f"{parent}/{token}" if parent else token
        found.append(
            Category(
                path,
                _text(node.get("name")),
                _count(node.get("productCount")),
                _categories(node.get("catalogGroupView"), path),
            )
        )
    return tuple(found)


def parse_category_tree(body: bytes) -> tuple[Category, ...]:
    """The departments of ``browse.json``, each with its sub-categories (listing paths)."""
    document = _json_object(body, "category tree")
    try:
        nodes = document["pageProps"]["allProductCategories"]["catalogGroupView"]
    except (KeyError, TypeError):
        raise SiteFormatError("no pageProps.allProductCategories.catalogGroupView") from None
    tree = _categories(nodes, "")
    if not tree:
        raise SiteFormatError("the category tree is empty")
    return tree


def listing_plan(
    tree: tuple[Category, ...], skip: frozenset[str], cap: int
) -> tuple[list[Category], list[Category]]:
    """(categories to list, promotional groupings skipped), from the tree alone.

    A category in ``skip`` (by listing path) only repeats products listed elsewhere. One the
    tree already counts above ``cap`` (48 rows x 104 pages) is replaced by its sub-categories:
    its own listing would stop short. A listing can still say more than the tree did
    (``noOfResults``): the crawl then goes down from there.
    """
    listed: list[Category] = []
    skipped: list[Category] = []

    def visit(category: Category) -> None:
        if category.path in skip:
            skipped.append(category)
        elif category.children and (category.product_count or 0) > cap:
            for child in category.children:
                visit(child)
        else:
            listed.append(category)

    for category in tree:
        visit(category)
    return listed, skipped


def listing_page_count(total: int, page_size: int, max_pages: int) -> int:
    """Pages a listing of ``total`` products has, as far as the site shows them."""
    if total <= 0 or page_size <= 0:
        return 1
    return max(1, min(math.ceil(total / page_size), max_pages))


def parse_listing(body: bytes, path: str = "") -> ListingPage:
    """A listing page: ``_type == "PRODUCT"`` rows are products; the rest (``SINGLE_TILE``,
    ``CONTENT_ASSOCIATION``, ``PRODUCT_ASSOCIATION``) are ads and cross-sell, left out.
    ``path`` is the page's own listing path, to name its sub-categories'."""
    document = _json_object(body, "listing")
    props = document.get("pageProps")
    search = props.get("searchResults") if isinstance(props, dict) else None
    if not isinstance(search, dict):
        raise SiteFormatError("listing without pageProps.searchResults")
    rows = search.get("results")
    total = _count(search.get("noOfResults"))
    if not isinstance(rows, list) or total is None:
        raise SiteFormatError("listing without searchResults.results or noOfResults")
    products = [
        row
        for row in rows
        if isinstance(row, dict) and row.get("_type", PRODUCT_ROW) == PRODUCT_ROW
    ]
    page_size = _count(search.get("pageSize"))
    return ListingPage(
        total=total,
        page_size=page_size if page_size and page_size > 0 else None,
        products=products,
        other_rows=len(rows) - len(products),
        children=_categories(search.get("catalogGroupView"), path.strip("/")),
    )


def _listing_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value.strip()[:_MAX_TEXT].strip() or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _listing_money(value: Any) -> float | None:
    if isinstance(value, str):
        try:
            value = float(value.strip().lstrip("$"))
        except ValueError:
            return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    number = float(value)
    return number if 0.0 <= number <= _MAX_MONEY else None  # NaN fails both


def _listing_sku(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value)
    return value if isinstance(value, int) and value > 0 else None


def listing_line(
    row: dict[str, Any], store_id: str, base_url: str, scraped_at: str
) -> dict[str, Any] | None:
    """A listing's product row as a canonical inbox line (README "Line format"), or
    ``None`` for a row without a usable SKU.

    Values that the loader would refuse (wrong types, negative or absurd prices, texts
    over 1,000 characters) become null or are shortened here, so every line imports.
    Listings carry no barcode, so neither does the line.
    """
    sku = _listing_sku(row.get("id"))
    if sku is None:
        return None
    name, brand, size = (
        _listing_text(row.get("name")),
        _listing_text(row.get("brand")),
        _listing_text(row.get("size")),
    )
    pricing = row.get("pricing")
    pricing = pricing if isinstance(pricing, dict) else {}
    unit = pricing.get("unit")
    unit = unit if isinstance(unit, dict) else {}
    available = row.get("availability")
    slug = " ".join(text for text in (brand, name, size) if text)[:200]
    return {
        "company": "coles",
        "store_id": store_id,
        "sku": sku,
        "name": name,
        "brand": brand,
        "size": size,
        "price": _listing_money(pricing.get("now")),
        "was_price": _listing_money(pricing.get("was")) or None,  # 0 means no was-price
        "unit_price": _listing_money(unit.get("price")),
        "available": available if isinstance(available, bool) else None,
        "url": base_url + product_page_path(str(sku), slug),
        "scraped_at": scraped_at,
    }
