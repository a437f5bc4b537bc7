"""Everything the project knows about the shape of the retailer's pages and JSON.

Pure functions, no Scrapy: the one small, replaceable place to change when the live
site changes. ``docs/site.md`` lists each point with where and when it was seen. The site
as public captures show it in late 2026, with the 2024 layout still understood:

* ``GET /``: the subscription key in an inline ``window.__RUNTIME_CONFIG__={...}`` script
  (2026), or in ``__NEXT_DATA__.runtimeConfig`` (2024, with ``COLES_GRAPHQL_API_URL``);
  ``buildId`` in ``__NEXT_DATA__``. Without a published GraphQL URL: ``{base}/api/graphql``.
* ``POST {graphql}`` ``GetProductDetails`` (``$productId: String!``, ``$storeId: BrandedId!``
  as ``COL:<store>``), several SKUs per document as aliases ``p0``, ``p1``...;
  ``data.product.gtin`` is a string. An unknown SKU: an ``errors[]`` entry saying "not
  found" and a null product. Validation and bad-input errors mean the site changed.
* ``GetShopProductsMenu`` (``productCategories``): the category tree (2026); the older
  ``/_next/data/{buildId}/en/browse.json`` still serves it in the 2024 layout.
* ``GET /product/{slug}-{sku}``: ``__NEXT_DATA__`` ``props.pageProps.product`` and a
  schema.org JSON-LD ``Product`` (``gtin`` seen there in 2025; never trust another SKU's).
* ``GET /_next/data/{buildId}/en/browse/{path}.json?slug={path}&page=N&storeId=0584``: a
  listing page (``pageProps.searchResults``: ``noOfResults``, ``results[]`` with product rows
  and ad rows); 48 rows a page and no page past 104; a stale ``buildId`` answers 404;
* Imperva (Incapsula) protection, served instead of any of these, whatever the status: the
  JavaScript challenge ("Pardon Our Interruption", solved by a browser) and the block page
  ("Request unsuccessful. Incapsula incident ID", a verdict on the client's address).

The package splits it by concern: :mod:`.home` (home page and key), :mod:`.products`
(product documents and answers, product pages), :mod:`.listings` (categories and listing
pages), :mod:`.protection` (challenge and block pages), :mod:`.pages` (what they share).
This module re-exports the public names and is the Coles adapter (:data:`COLES`).
"""

from __future__ import annotations

from colesbarcodes.site.coles.home import (
    DEFAULT_GRAPHQL_PATH,
    KEY_IN_NEXT_DATA,
    KEY_IN_PAGE,
    KEY_IN_RUNTIME_CONFIG,
    HomePage,
    SiteConfig,
    parse_build_id,
    parse_site_config,
    read_home_page,
)
from colesbarcodes.site.coles.listings import (
    CATEGORIES_QUERY,
    Category,
    CategoryTreeRefused,
    ListingPage,
    categories_graphql_body,
    categories_path,
    listing_line,
    listing_page_count,
    listing_path,
    listing_plan,
    parse_category_tree,
    parse_graphql_category_tree,
    parse_listing,
)
from colesbarcodes.site.coles.pages import (
    SiteFormatError,
    parse_next_data,
)
from colesbarcodes.site.coles.products import (
    GRAPHQL_QUERY,
    GraphQLAnswer,
    GraphQLProblem,
    ProblemKind,
    ProductRecord,
    Reading,
    SkuReading,
    classify_errors,
    describe_answer,
    graphql_body,
    graphql_headers,
    parse_graphql_products,
    parse_product_page,
    product_alias,
    product_page_path,
    read_product_page,
)
from colesbarcodes.site.coles.protection import (
    BOT_CHECK_COOKIE_PREFIXES,
    PROTECTION_BLOCK,
    PROTECTION_CHALLENGE,
    is_block_page,
    is_bot_check,
    protection_kind,
)

__all__ = [
    "BOT_CHECK_COOKIE_PREFIXES",
    "CATEGORIES_QUERY",
    "DEFAULT_GRAPHQL_PATH",
    "GRAPHQL_QUERY",
    "KEY_IN_NEXT_DATA",
    "KEY_IN_PAGE",
    "KEY_IN_RUNTIME_CONFIG",
    "PROTECTION_BLOCK",
    "PROTECTION_CHALLENGE",
    "Category",
    "CategoryTreeRefused",
    "GraphQLAnswer",
    "GraphQLProblem",
    "HomePage",
    "ListingPage",
    "ProblemKind",
    "ProductRecord",
    "Reading",
    "SiteConfig",
    "SiteFormatError",
    "SkuReading",
    "categories_graphql_body",
    "categories_path",
    "classify_errors",
    "describe_answer",
    "graphql_body",
    "graphql_headers",
    "is_block_page",
    "is_bot_check",
    "listing_line",
    "listing_page_count",
    "listing_path",
    "listing_plan",
    "parse_build_id",
    "parse_category_tree",
    "parse_graphql_category_tree",
    "parse_graphql_products",
    "parse_listing",
    "parse_next_data",
    "parse_product_page",
    "parse_site_config",
    "product_alias",
    "product_page_path",
    "protection_kind",
    "read_home_page",
    "read_product_page",
]
