"""Everything the project knows about the shape of Woolworths' pages and JSON.

Pure functions, no Scrapy. Woolworths publishes a barcode on every listing row, so its side
of the catalogue needs no barcode crawl: this package reads listing rows (:mod:`.rows`) for
the loader and the listing crawl. ``../shared`` facts ("Woolworths in 2026") and
``docs/site.md`` say where and when each point was seen.
"""

from __future__ import annotations

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
    "COMPANY",
    "ONLINE_STORE",
    "ONLINE_STORE_NAME",
    "RowShapeError",
    "answer_rows",
    "canonical_fields",
    "is_listing_answer",
    "is_listing_row",
    "positioned_rows",
    "product_path",
    "skip_reason",
]
