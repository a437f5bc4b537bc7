"""What the crawl's machinery needs of a retailer's site: the adapter interface.

A retailer is a package of pure functions under ``colesbarcodes/site/<retailer>/`` (bytes in,
values out; no Scrapy, no database) that satisfies :class:`RetailerSite`. The components
(the site session, the lookup source, the bot check, the exit pool) reach it through
:func:`retailer_site` and never import a retailer's modules for these concerns, so a second
retailer adds its package and a name here, and leaves the crawl's machinery alone.
Whatever else a retailer's spider or ``scrapy site-check`` reads (listing rows, the category
tree) stays in its package, imported by that spider directly.

mypy checks each registered package against the protocol (a module satisfies a protocol
when it has its names with the same signatures).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Sequence

    from colesbarcodes.site.coles.home import HomePage
    from colesbarcodes.site.coles.products import GraphQLAnswer, SkuReading

__all__ = [
    "PROTECTED_RETAILERS",
    "RETAILERS",
    "RetailerSite",
    "SiteProtection",
    "UnknownRetailer",
    "retailer_site",
    "site_protection",
]

RETAILERS = ("coles",)
PROTECTED_RETAILERS = ("coles", "woolworths")  # whose protection pages the exits can read


class RetailerSite(Protocol):
    """A retailer's pages and answers, as pure functions."""

    def read_home_page(self, html: bytes, page_url: str) -> HomePage:
        """What the home page publishes: the key, the API URL, the build id (or why not)."""
        ...

    def protection_kind(self, body: bytes) -> str | None:
        """``"challenge"``, ``"block"`` or ``None`` (content), whatever the status."""
        ...

    def graphql_headers(self, base_url: str, api_key: str) -> dict[str, str]:
        """The headers the site's own API client sends."""
        ...

    def graphql_body(self, skus: str | Sequence[str], store_id: str) -> bytes:
        """One product document for ``skus`` of one store."""
        ...

    def parse_graphql_products(
        self, body: bytes, skus: Sequence[str], status: int = 200, content_type: str = ""
    ) -> GraphQLAnswer:
        """Each SKU's reading of a product document's answer; total (never raises)."""
        ...

    def read_product_page(
        self, body: bytes, sku: str, status: int = 200, content_type: str = ""
    ) -> SkuReading:
        """A product page's reading for ``sku``; total (never raises)."""
        ...

    def product_page_path(self, sku: str, name: str | None = None) -> str:
        """The path of a SKU's product page."""
        ...


class SiteProtection(Protocol):
    """What the exits and the bot check read of a retailer's protection: a page's kind."""

    def protection_kind(self, body: bytes) -> str | None:
        """``"challenge"``, ``"block"`` or ``None`` (content), whatever the status."""
        ...


class UnknownRetailer(ValueError):
    """A retailer name this project has no package for."""


def retailer_site(name: str = "coles") -> RetailerSite:
    """The adapter of retailer ``name`` (one of :data:`RETAILERS`)."""
    if name == "coles":
        from colesbarcodes.site import coles

        return coles
    raise UnknownRetailer(f"no site package for retailer {name!r} (known: {', '.join(RETAILERS)})")


def site_protection(name: str = "coles") -> SiteProtection:
    """How retailer ``name`` (one of :data:`PROTECTED_RETAILERS`) answers a client it
    refuses: the crawl's setting ``CRAWL_RETAILER`` names it, so the exits read the block
    page of the site the spider crawls."""
    if name == "coles":
        from colesbarcodes.site import coles

        return coles
    if name == "woolworths":
        from colesbarcodes.site.woolworths import protection

        return protection
    known = ", ".join(PROTECTED_RETAILERS)
    raise UnknownRetailer(f"no protection reader for retailer {name!r} (known: {known})")
