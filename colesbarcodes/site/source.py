"""Where the crawl gets a SKU's product record: one small adapter over the site's API.

The default is the site's GraphQL ``GetProductDetails``, several SKUs of one store per
document (``COLES_GRAPHQL_BATCH``), reached with the subscription key its home page
publishes (:class:`~colesbarcodes.extensions.site_session.SiteSession`); the product page is the fallback
when the API answer is unusable. Parsing lives in :mod:`colesbarcodes.site.coles`; this
module only builds the requests and reads the responses, so following a change of the live
site stays local.

A lookup request carries ``meta["lookups"]``: one :data:`LookupKey` per SKU it asks for,
in document order (the SKU, its store, and the inbox file or frontier batch it came from).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import scrapy

from colesbarcodes.extensions.site_session import SiteSession
from colesbarcodes.site.coles import (
    GraphQLAnswer,
    ProductRecord,
    SiteConfig,
    SiteFormatError,
    graphql_body,
    graphql_headers,
    parse_graphql_products,
    parse_product_page,
    product_page_path,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from scrapy.crawler import Crawler
    from scrapy.http import Response

__all__ = [
    "API_STATUSES",
    "GraphQLBarcodeSource",
    "LookupKey",
    "SourceError",
    "lookup_request",
    "merge_lookup_requests",
]

logger = logging.getLogger(__name__)

LookupKey = dict[str, Any]  # {"sku", "store_id", "file", "batch"}
# Statuses the callback reads itself: GraphQL refusals carry their reason in the body.
API_STATUSES = [400, 413]


class SourceError(Exception):
    """The site's answer cannot be read (it changed, or it is not what was asked for)."""


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
        body=graphql_body(skus, str(lookups[0]["store_id"])),
        headers=graphql_headers(base_url, config.api_key),
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
        body=graphql_body(skus, str(lookups[0]["store_id"])),
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
            "batch": meta.get("batch"),
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
        headers = graphql_headers(self.base_url, self.config.api_key)
        return request.replace(
            url=self.config.graphql_url,
            body=graphql_body(skus, str(lookups[0]["store_id"])),
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

    def fallback(self, response: Response, key: LookupKey, **kwargs: Any) -> scrapy.Request:
        """The product page of one SKU."""
        sku = str(key["sku"])
        return scrapy.Request(
            f"{self.base_url}{product_page_path(sku)}",
            meta={
                "lookups": [key],
                "sku": sku,
                "store_id": key.get("store_id"),
                "file": key.get("file"),
                "batch": key.get("batch"),
                "coles_source": "product_page",
            },
            **kwargs,
        )

    @staticmethod
    def is_fallback(response: Response) -> bool:
        return response.meta.get("coles_source") == "product_page"

    def read(self, response: Response) -> GraphQLAnswer:
        """Each asked SKU's answer; raises :class:`SourceError` for an unreadable answer."""
        lookups: list[LookupKey] = response.meta["lookups"]
        skus = [str(key["sku"]) for key in lookups]
        try:
            if self.is_fallback(response):
                answer = GraphQLAnswer()
                if response.status == 404:
                    answer.not_found[skus[0]] = "no product page"
                else:
                    answer.records[skus[0]] = parse_product_page(response.body, skus[0])
                return answer
            return parse_graphql_products(response.body, skus, response.status)
        except SiteFormatError as exc:
            raise SourceError(str(exc)) from None

    @staticmethod
    def record_of(answer: GraphQLAnswer, sku: str) -> ProductRecord | None:
        return answer.records.get(sku)
