"""Where the crawl gets a SKU's product record: one small adapter over the site's API.

The default is the site's GraphQL ``GetProduct``, reached with the subscription key and
URL its own pages publish; the product page is the fallback when the API answer is
unusable. Parsing lives in :mod:`colesbarcodes.coles_site`; this class only builds the
requests and reads the responses, so following a change of the live site stays local.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import scrapy

from colesbarcodes.coles_site import (
    ProductRecord,
    SiteConfig,
    SiteFormatError,
    graphql_body,
    parse_graphql_product,
    parse_product_page,
    parse_site_config,
    product_page_path,
)

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Response

__all__ = ["GraphQLBarcodeSource", "SourceError"]

logger = logging.getLogger(__name__)


class SourceError(Exception):
    """The site's answer cannot be read (it changed, or it is not what was asked for)."""


class GraphQLBarcodeSource:
    """GraphQL ``GetProduct`` by default; the product page when the API answer is unusable."""

    def __init__(self, base_url: str, crawler: Crawler) -> None:
        self.base_url = base_url.rstrip("/")
        self.crawler = crawler
        self.config: SiteConfig | None = None

    async def configure(self) -> SiteConfig:
        """Read the API key and URL from the site's home page (through the middlewares, so a
        bot check met here is solved like any other)."""
        if self.crawler.engine is None:
            raise RuntimeError("the crawler's engine is not running")
        response = await self.crawler.engine.download_async(
            scrapy.Request(f"{self.base_url}/", dont_filter=True, meta={"coles_source": "home"})
        )
        if response.status != 200:
            raise SourceError(f"home page answered {response.status}")
        try:
            self.config = parse_site_config(response.body, response.url)
        except SiteFormatError as exc:
            raise SourceError(f"home page: {exc}") from None
        logger.info("Site build %s, GraphQL at %s", self.config.build_id, self.config.graphql_url)
        return self.config

    def request(
        self, sku: str, store_id: str, meta: dict[str, Any], **kwargs: Any
    ) -> scrapy.Request:
        if self.config is None:
            raise RuntimeError("configure() first")
        return scrapy.Request(
            self.config.graphql_url,
            method="POST",
            body=graphql_body(sku, store_id),
            headers={
                "Content-Type": "application/json",
                "Accept": "application/json",
                "ocp-apim-subscription-key": self.config.api_key,
            },
            meta={**meta, "sku": sku, "store_id": store_id, "coles_source": "graphql"},
            dont_filter=True,  # the URL is the same for every SKU; the body differs
            **kwargs,
        )

    def fallback(self, response: Response, **kwargs: Any) -> scrapy.Request:
        sku = response.meta["sku"]
        return scrapy.Request(
            f"{self.base_url}{product_page_path(sku)}",
            meta={**response.meta, "coles_source": "product_page"},
            **kwargs,
        )

    @staticmethod
    def is_fallback(response: Response) -> bool:
        return response.meta.get("coles_source") == "product_page"

    def read(self, response: Response) -> ProductRecord | None:
        """The record for the response's SKU; ``None`` if the site says it does not exist."""
        sku = str(response.meta["sku"])
        try:
            if self.is_fallback(response):
                if response.status == 404:
                    return None
                return parse_product_page(response.body, sku)
            return parse_graphql_product(response.body, sku)
        except SiteFormatError as exc:
            raise SourceError(str(exc)) from None
