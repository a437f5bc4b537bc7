"""Everything the project knows about the shape of Woolworths' pages and JSON.

Pure functions, no Scrapy. Woolworths publishes a barcode on every listing row, so its side
of the catalogue needs no barcode crawl: this package reads listing rows (:mod:`.rows`) for
the loader and the listing crawl, the category tree and listing API (:mod:`.listings`) and
its protection's block page (:mod:`.protection`). ``../shared`` facts ("Woolworths in 2026") and
``docs/site.md`` say where and when each point was seen.
"""

from __future__ import annotations

from colesbarcodes.site.woolworths.listings import (
    CATEGORIES_PATH,
    EVERYDAY_MARKET,
    LISTING_PATH,
    MAX_PRODUCTS,
    PAGE_SIZE,
    Department,
    ListingAnswer,
    SiteFormatError,
    api_headers,
    department_plan,
    listing_body,
    listing_line,
    listing_page_count,
    parse_category_tree,
    parse_listing,
)
from colesbarcodes.site.woolworths.protection import (
    PROTECTION_BLOCK,
    PROTECTION_CHALLENGE,
    is_block_page,
    protection_kind,
)
from colesbarcodes.site.woolworths.rows import (
    BASE_URL,
    COMPANY,
    ONLINE_STORE,
    ONLINE_STORE_NAME,
    RowShapeError,
    answer_rows,
    canonical_fields,
    is_listing_answer,
    is_listing_row,
    positioned_rows,
    product_path,
    skip_reason,
)

__all__ = [
    "BASE_URL",
    "CATEGORIES_PATH",
    "COMPANY",
    "EVERYDAY_MARKET",
    "LISTING_PATH",
    "MAX_PRODUCTS",
    "ONLINE_STORE",
    "ONLINE_STORE_NAME",
    "PAGE_SIZE",
    "PROTECTION_BLOCK",
    "PROTECTION_CHALLENGE",
    "Department",
    "ListingAnswer",
    "RowShapeError",
    "SiteFormatError",
    "answer_rows",
    "api_headers",
    "canonical_fields",
    "department_plan",
    "is_block_page",
    "is_listing_answer",
    "is_listing_row",
    "listing_body",
    "listing_line",
    "listing_page_count",
    "parse_category_tree",
    "parse_listing",
    "positioned_rows",
    "product_path",
    "protection_kind",
    "skip_reason",
]
