"""Where the crawl gets a SKU's product record: one small adapter over the site's API.

The default is the site's GraphQL ``GetProductDetails``, several SKUs of one store per
document (``COLES_GRAPHQL_BATCH``), reached with the subscription key its home page
publishes (:class:`~colesbarcodes.extensions.site_session.SiteSession`); with
``COLES_PRODUCT_PAGE_FALLBACK`` the product page of a SKU whose record has an empty ``gtin``
is read too (it can only add a barcode). Parsing lives in :mod:`colesbarcodes.site.coles`; this
module only builds the requests and reads the responses, so following a change of the live
site stays local.

A lookup request carries ``meta["lookups"]``: one :data:`LookupKey` per SKU it asks for,
in document order (the SKU, its store, and the enrichment file or frontier read it came from).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import scrapy

from colesbarcodes.extensions.site_session import SiteSession
from colesbarcodes.site.coles import (
    GraphQLAnswer,
    ProductRecord,
    Reading,
    SiteConfig,
    SkuReading,
)
from colesbarcodes.site.retailer import retailer_site

if TYPE_CHECKING:
    from collections.abc import Sequence

    from scrapy.crawler import Crawler
    from scrapy.http import Response

__all__ = [
    "API_STATUSES",
    "GraphQLBarcodeSource",
    "LookupKey",
    "lookup_request",
    "merge_lookup_requests",
]

SITE = retailer_site()  # the retailer's pages and answers (colesbarcodes.site.retailer)

logger = logging.getLogger(__name__)

LookupKey = dict[str, Any]  # {"sku", "store_id", "file", "frontier_read"}
# Statuses the callback reads itself: GraphQL refusals carry their reason in the body.
API_STATUSES = [400, 413]


def lookup_request(
    config: SiteConfig,
    base_url: str,
    lookups: Sequence[LookupKey],
    meta: dict[str, Any],
    **kwargs: Any,
) -> scrapy.Request:
    """One ``GetProductDetails`` request for ``lookups`` (all of one store)."""
    skus = [str(key["sku"]) for key in lookups]
    return scrapy.Request(
        config.graphql_url,
        method="POST",
        body=SITE.graphql_body(skus, str(lookups[0]["store_id"])),
        headers=SITE.graphql_headers(base_url, config.api_key),
        meta={
            **meta,
            "lookups": list(lookups),
            "coles_source": "graphql",
            "coles_api": True,
            "handle_httpstatus_list": API_STATUSES,
        },
        dont_filter=True,  # the URL is the same for every SKU; the body differs
        **kwargs,
    )


def merge_lookup_requests(requests: Sequence[scrapy.Request]) -> scrapy.Request:
    """One request asking for the SKUs of ``requests`` (same store, same callbacks)."""
    first = requests[0]
    if len(requests) == 1:
        return first
    lookups = [key for request in requests for key in request.meta["lookups"]]
    skus = [str(key["sku"]) for key in lookups]
    return first.replace(
        body=SITE.graphql_body(skus, str(lookups[0]["store_id"])),
        meta={**first.meta, "lookups": lookups},
    )


class GraphQLBarcodeSource:
    """GraphQL ``GetProductDetails`` by default; the product page when the API answer is
    unusable."""

    def __init__(self, base_url: str, crawler: Crawler) -> None:
        self.base_url = base_url.rstrip("/")
        self.crawler = crawler

    @property
    def session(self) -> SiteSession:
        return SiteSession.of(self.crawler)

    async def configure(self) -> SiteConfig:
        """Read the key and URL from the site's home page (raises ``SiteUnusable``)."""
        return await self.session.configure(self.base_url)

    @property
    def config(self) -> SiteConfig:
        if self.session.config is None:
            raise RuntimeError("configure() first")
        return self.session.config

    def request(
        self, sku: str, store_id: str, meta: dict[str, Any], **kwargs: Any
    ) -> scrapy.Request:
        """The request for one SKU; ``LookupBatchMiddleware`` merges such requests."""
        key: LookupKey = {
            "sku": str(sku),
            "store_id": store_id,
            "file": meta.get("file"),
            "frontier_read": meta.get("frontier_read"),
        }
        return lookup_request(
            self.config,
            self.base_url,
            [key],
            {**meta, "sku": str(sku), "store_id": store_id},
            **kwargs,
        )

    def again(
        self, response: Response, lookups: Sequence[LookupKey], **meta: Any
    ) -> scrapy.Request:
        """The request of ``response`` asking only for ``lookups`` (a half, or the SKUs an
        error spoiled), with the current key."""
        request = response.request
        if request is None:
            raise RuntimeError("a response without its request")
        skus = [str(key["sku"]) for key in lookups]
        headers = SITE.graphql_headers(self.base_url, self.config.api_key)
        return request.replace(
            url=self.config.graphql_url,
            body=SITE.graphql_body(skus, str(lookups[0]["store_id"])),
            headers=headers,
            meta={
                **{
                    k: v
                    for k, v in request.meta.items()
                    if not k.startswith(("retry_", "download_"))
                },
                "lookups": list(lookups),
                **meta,
            },
            dont_filter=True,
        )

    def fallback(
        self, response: Response, key: LookupKey, api: SkuReading, **kwargs: Any
    ) -> scrapy.Request:
        """The product page of one SKU whose record (``api``, a ``no_barcode`` reading) had
        an empty ``gtin``; the API's reading travels with it, to stand if the page adds
        nothing."""
        sku = str(key["sku"])
        record = api.record or ProductRecord(sku)
        return scrapy.Request(
            f"{self.base_url}{SITE.product_page_path(sku)}",
            meta={
                "lookups": [key],
                "sku": sku,
                "store_id": key.get("store_id"),
                "file": key.get("file"),
                "frontier_read": key.get("frontier_read"),
                "coles_source": "product_page",
                "coles_api_reading": {
                    "reason": api.reason,
                    "name": record.name,
                    "brand": record.brand,
                    "size": record.size,
                },
                "handle_httpstatus_list": [404],  # "no page" is an answer the callback reads
            },
            dont_filter=True,
            **kwargs,
        )

    @staticmethod
    def api_reading(message: scrapy.Request | Response) -> SkuReading:
        """The API's ``no_barcode`` reading a product page request carries."""
        api = message.meta["coles_api_reading"]
        record = ProductRecord(
            str(message.meta["sku"]), api["name"], api["brand"], api["size"], None, True
        )
        return SkuReading(Reading.NO_BARCODE, str(api["reason"]), record)

    @staticmethod
    def page_again(response: Response, **meta: Any) -> scrapy.Request:
        """The product page request of ``response`` again (after a page not understood)."""
        request = response.request
        if request is None:
            raise RuntimeError("a response without its request")
        kept = {k: v for k, v in request.meta.items() if not k.startswith(("retry_", "download_"))}
        return request.replace(meta={**kept, **meta}, dont_filter=True)

    @staticmethod
    def is_fallback(message: scrapy.Request | Response) -> bool:
        return message.meta.get("coles_source") == "product_page"

    def read(self, response: Response) -> GraphQLAnswer:
        """Each asked SKU's reading (never raises: an unreadable answer is a reading too)."""
        lookups: list[LookupKey] = response.meta["lookups"]
        skus = [str(key["sku"]) for key in lookups]
        content_type = (response.headers.get(b"Content-Type") or b"").decode("latin-1")
        if self.is_fallback(response):
            reading = SITE.read_product_page(response.body, skus[0], response.status, content_type)
            return GraphQLAnswer(readings={skus[0]: reading})
        return SITE.parse_graphql_products(response.body, skus, response.status, content_type)
