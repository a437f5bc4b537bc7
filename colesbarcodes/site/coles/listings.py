"""The catalogue as the listing crawl reads it: the category tree and the listing pages.
Pure functions, no Scrapy.

* ``GetShopProductsMenu`` (``productCategories``): the category tree (2026); the older
  ``/_next/data/{buildId}/en/browse.json`` still serves it in the 2024 layout.
* ``GET /_next/data/{buildId}/en/browse/{path}.json?slug={path}&page=N&storeId=0584``: a
  listing page (``pageProps.searchResults``: ``noOfResults``, ``results[]`` with product rows
  and ad rows); 48 rows a page and no page past 104; a stale ``buildId`` answers 404.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson

from colesbarcodes.site.coles.pages import SiteFormatError, count_value, json_object, text_value
from colesbarcodes.site.coles.products import (
    GraphQLProblem,
    ProblemKind,
    classify_errors,
    product_page_path,
)
from colesbarcodes.site.line_values import line_money, line_sku, line_text

__all__ = [
    "CATEGORIES_QUERY",
    "PRODUCT_ROW",
    "Category",
    "CategoryTreeRefused",
    "ListingPage",
    "categories_graphql_body",
    "categories_path",
    "listing_line",
    "listing_page_count",
    "listing_path",
    "listing_plan",
    "parse_category_tree",
    "parse_graphql_category_tree",
    "parse_listing",
]


PRODUCT_ROW = "PRODUCT"


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
                text_value(node.get("name")),
                count_value(node.get("productCount")),
                _categories(node.get("catalogGroupView"), path),
            )
        )
    return tuple(found)


def parse_category_tree(body: bytes) -> tuple[Category, ...]:
    """The departments of ``browse.json``, each with its sub-categories (listing paths)."""
    document = json_object(body, "category tree")
    try:
        nodes = document["pageProps"]["allProductCategories"]["catalogGroupView"]
    except (KeyError, TypeError):
        raise SiteFormatError("no pageProps.allProductCategories.catalogGroupView") from None
    tree = _categories(nodes, "")
    if not tree:
        raise SiteFormatError("the category tree is empty")
    return tree


# The site's own declarations (2026; the same in every public client seen): a GraphQL server
# validates a document before it runs it and refuses it whole when a variable's type is not the
# argument's (``Boolean`` where it is ``Boolean!``) or a fragment names a type it lacks.
CATEGORIES_QUERY = (
    "query GetShopProductsMenu($storeId: BrandedId!, $withCampaignLinks: Boolean!, "
    "$campaignCount: Int) { menuItems: productCategories(storeId: $storeId, "
    "withCampaignLinks: $withCampaignLinks, campaignCount: $campaignCount) { ...MenuItems } } "
    "fragment MenuItems on ProductCategories { restrictedIds: excludedCategoryIds "
    "items: catalogGroupView { ...MenuItem childItems: catalogGroupView { ...MenuItem "
    "childItems: catalogGroupView { ...MenuItem childItems: catalogGroupView { ...MenuItem "
    "} } } } } "
    "fragment MenuItem on ProductCategory "
    "{ id level name originalName productCount seoToken type subType }"
)


class CategoryTreeRefused(SiteFormatError):
    """``GetShopProductsMenu`` answered no tree because the whole document was refused or
    failed: ``problem`` says which (``REJECTED``: the site no longer takes the document, so
    the site changed) in the server's own words."""

    def __init__(self, problem: GraphQLProblem) -> None:
        verb = "refused" if problem.kind is ProblemKind.REJECTED else "failed"
        super().__init__(f"GraphQL {verb} GetShopProductsMenu: {problem.message}"[:300])
        self.problem = problem

    @property
    def site_changed(self) -> bool:
        return self.problem.kind is ProblemKind.REJECTED


def categories_graphql_body(store_id: str) -> bytes:
    """The site's own ``GetShopProductsMenu`` document (2026) for one store."""
    return orjson.dumps(
        {
            "operationName": "GetShopProductsMenu",
            "variables": {
                "storeId": f"COL:{store_id}",
                "withCampaignLinks": False,
                "campaignCount": 0,
            },
            "query": CATEGORIES_QUERY,
        }
    )


def _rename_children(nodes: Any) -> Any:
    """``items``/``childItems`` (the site's aliases) as the tree's ``catalogGroupView``."""
    if not isinstance(nodes, list):
        return nodes
    renamed = []
    for node in nodes:
        if isinstance(node, dict):
            node = dict(node)
            children = node.pop("childItems", node.get("catalogGroupView"))
            node["catalogGroupView"] = _rename_children(children)
        renamed.append(node)
    return renamed


def parse_graphql_category_tree(body: bytes, status: int = 200) -> tuple[Category, ...]:
    """The departments of a ``GetShopProductsMenu`` answer, as :func:`parse_category_tree`.

    An answer without a menu whose errors (or HTTP status) refuse the document raises
    :class:`CategoryTreeRefused`, naming the server's reason: a client that falls back to
    another source must still be able to tell that this one refused it.
    """
    try:
        document = json_object(body, "GraphQL category tree")
    except SiteFormatError:
        if status >= 400:
            raise CategoryTreeRefused(classify_errors(None, status)) from None
        raise
    data = document.get("data")
    menu = None
    if isinstance(data, dict):
        menu = data.get("menuItems", data.get("productCategories"))
    if not isinstance(menu, dict):
        errors = document.get("errors")
        if errors or status >= 400:
            raise CategoryTreeRefused(classify_errors(errors, status))
        raise SiteFormatError("GetShopProductsMenu answered no menu")
    nodes = menu.get("items", menu.get("catalogGroupView"))
    tree = _categories(_rename_children(nodes), "")
    if not tree:
        raise SiteFormatError("the GraphQL category tree is empty")
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
    document = json_object(body, "listing")
    props = document.get("pageProps")
    search = props.get("searchResults") if isinstance(props, dict) else None
    if not isinstance(search, dict):
        raise SiteFormatError("listing without pageProps.searchResults")
    rows = search.get("results")
    total = count_value(search.get("noOfResults"))
    if not isinstance(rows, list) or total is None:
        raise SiteFormatError("listing without searchResults.results or noOfResults")
    products = [
        row
        for row in rows
        if isinstance(row, dict) and row.get("_type", PRODUCT_ROW) == PRODUCT_ROW
    ]
    page_size = count_value(search.get("pageSize"))
    return ListingPage(
        total=total,
        page_size=page_size if page_size and page_size > 0 else None,
        products=products,
        other_rows=len(rows) - len(products),
        children=_categories(search.get("catalogGroupView"), path.strip("/")),
    )


def listing_line(
    row: dict[str, Any], store_id: str, base_url: str, scraped_at: str
) -> dict[str, Any] | None:
    """A listing's product row as a canonical inbox line (README "Line format"), or
    ``None`` for a row without a usable SKU.

    Values that the loader would refuse (wrong types, negative or absurd prices, texts
    over 1,000 characters) become null or are shortened here, so every line imports.
    Listings carry no barcode, so neither does the line.
    """
    sku = line_sku(row.get("id"))
    if sku is None:
        return None
    name, brand, size = (
        line_text(row.get("name")),
        line_text(row.get("brand")),
        line_text(row.get("size")),
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
        "price": line_money(pricing.get("now")),
        "was_price": line_money(pricing.get("was")) or None,  # 0 means no was-price
        "unit_price": line_money(unit.get("price")),
        "available": available if isinstance(available, bool) else None,
        "url": base_url + product_page_path(str(sku), slug),
        "scraped_at": scraped_at,
    }
