"""The data-quality report's document, key by key.

:func:`colesbarcodes.db.reports.quality_report` builds it (and ``data_quality``,
``coverage_timeline``, ``crawl_runs``... its parts); ``coles-loader report --json`` prints
it as it is and :func:`loaders.report.render_report` draws the page from it. Plain dicts
and lists, ready for JSON: these types only name their keys for the type checker. Times are
ISO 8601 text in UTC, days ``YYYY-MM-DD``; a SKU is a number for Coles, text elsewhere.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

__all__ = [
    "BothRetailers",
    "CompanyCoverage",
    "Conflict",
    "ConflictFields",
    "Conflicts",
    "CrawlRunRow",
    "DataQuality",
    "FailingSku",
    "FailingSkus",
    "Merge",
    "MergedProductCard",
    "Merges",
    "PricePair",
    "ProductCard",
    "QualityReport",
    "RetailerOverlap",
    "RetailerPrice",
    "StoreCoverage",
    "TimelineDay",
    "Totals",
]


class Totals(TypedDict):
    """All products: with a SKU, with a barcode, and the open conflicts and merges."""

    products: int
    with_sku: int
    with_barcode: int
    sku_pct: float
    barcode_pct: float
    open_conflicts: int
    merges: int


class CompanyCoverage(TypedDict):
    """The products one company lists (by SKU), and how many have a barcode."""

    company: str
    products: int
    with_sku: int
    with_barcode: int
    barcode_pct: float


class StoreCoverage(TypedDict):
    """The products one store prices, and how many have a barcode."""

    company: str
    store_id: str
    store_name: str | None
    products: int
    with_sku: int
    with_barcode: int
    barcode_pct: float


class RetailerOverlap(TypedDict):
    """One company's SKUs, how many name a product with a global GTIN, and how many of
    those a product that another company sells too (in-store codes never pair)."""

    company: str
    skus: int
    with_global_gtin: int
    also_sold_by_other: int
    also_sold_pct: float  # of the SKUs with a global GTIN


class DataQuality(TypedDict):
    """The figures of ``coles-loader data-quality``."""

    totals: Totals
    companies: list[CompanyCoverage]
    stores: list[StoreCoverage]
    overlap: list[RetailerOverlap]


class RetailerPrice(TypedDict):
    """One retailer's side of a price pairing: its SKU and its price at one store."""

    company: str
    sku: int | str
    store_id: str  # Woolworths: "online"
    price: float
    last_seen: str | None


class PricePair(TypedDict):
    """A product with a global GTIN priced by both retailers, at one store of each."""

    product_id: int
    name: str | None
    gtin: str
    prices: list[RetailerPrice]  # the first retailer's, then the second's
    difference: float  # the first retailer's price minus the second's
    pairings: NotRequired[int]  # one row per product: the product's store pairings


class BothRetailers(TypedDict):
    """What ``coles-loader compare`` answers, and the report's "Both retailers" section."""

    retailers: list[str]  # the two companies compared, in the order of ``prices``
    products: int  # products with a global GTIN that both sell (a SKU of each)
    pairings: int  # the store pairings that match the filters (rows before the limit)
    rows: list[PricePair]  # largest absolute difference first


class TimelineDay(TypedDict):
    """Coverage at the end of a day with activity, and that day's imports and lookups."""

    day: str
    products: int
    with_barcode: int
    barcode_pct: float
    new_products: int
    new_barcodes: int
    files_imported: int
    lines_imported: int
    lookups: int
    outcomes: dict[str, int]  # lookups per outcome


class CrawlRunRow(TypedDict):
    """One crawl of the run ledger."""

    id: int
    spider: str
    job: str | None
    started_at: str | None
    finished_at: str | None
    duration_s: float | None
    finish_reason: str
    monitor_result: str | None  # passed, failed, or None: not monitored
    monitor_detail: str | None
    skus: int
    outcomes: dict[str, int]  # SKUs per outcome
    node: str | None
    distrust_reason: str | None  # why its answers without a barcode are not believed
    asked_again: int  # distrusted: its SKUs without a barcode, which the next run asks again
    stats: NotRequired[dict[str, Any]]  # the crawl's Scrapy stats, when asked for


class ConflictFields(TypedDict):
    """What a barcode conflict says: a barcode offered for a product that holds another."""

    company: str
    sku: int | str
    existing_barcode: str | None
    offered_barcode: str
    reason: str
    source: str | None
    detected_at: str | None


class Conflict(ConflictFields):
    """An open barcode conflict, with its product."""

    id: int
    product_id: int


class Conflicts(TypedDict):
    total: int
    rows: list[Conflict]  # newest first, at most the rows asked for


class Merge(TypedDict):
    """A product merged into another (the survivor)."""

    survivor_id: int
    merged_id: int
    merged_name: str | None
    reason: str
    source: str | None
    merged_at: str | None


class Merges(TypedDict):
    total: int
    rows: list[Merge]  # newest first


class FailingSku(TypedDict):
    """A SKU whose lookup failed again and again."""

    company: str
    sku: int | str
    product_id: int | None
    failures: int
    first_failed_at: str | None
    last_failed_at: str | None
    last_reason: str | None
    latest_outcome: str
    still_failing: bool


class FailingSkus(TypedDict):
    total: int
    rows: list[FailingSku]  # still failing first, then by number of failures


class ProductCard(TypedDict):
    """A short record of a product named in the report."""

    id: int
    name: str | None
    brand: str | None
    size: str | None
    barcode: str | None
    barcode_scope: str | None
    company_skus: dict[str, list[int | str]]


class MergedProductCard(TypedDict):
    """A product named in the report that was merged away, and where it went."""

    id: int
    name: str | None
    merged_into: int
    merge_reason: str


class QualityReport(TypedDict):
    """Everything the data-quality report shows."""

    generated_at: str
    data_quality: DataQuality
    timeline: list[TimelineDay]  # oldest first
    runs: list[CrawlRunRow]  # newest first
    conflicts: Conflicts
    merges: Merges
    failing_skus: FailingSkus
    both_retailers: BothRetailers  # one row per product: its largest difference
    products: list[ProductCard | MergedProductCard]  # by id
