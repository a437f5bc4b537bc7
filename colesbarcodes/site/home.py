"""What the site's home page publishes for the crawls: the build id the listings need, and
the key and GraphQL URL the lookups need. Pure: the page is read once, by the crawl's
:class:`~colesbarcodes.extensions.site_session.SiteSession`, for both."""

from __future__ import annotations

from dataclasses import dataclass

from colesbarcodes.site.coles import SiteConfig, SiteFormatError, parse_build_id, parse_site_config

__all__ = ["HomePage", "read_home_page"]


@dataclass(frozen=True, slots=True)
class HomePage:
    """``config`` is None when the page has no key (``no_config`` says why); ``build_id`` is
    empty when the page has none (``no_build_id`` says why). Either may be there alone: the
    listing crawl can do without the key, the barcode crawl without the build id."""

    config: SiteConfig | None
    build_id: str
    no_config: str = ""
    no_build_id: str = ""


def read_home_page(html: bytes, page_url: str) -> HomePage:
    """Everything the crawls read from the home page at ``page_url``."""
    config, no_config = None, ""
    try:
        config = parse_site_config(html, page_url)
    except SiteFormatError as exc:
        no_config = str(exc)
    build_id, no_build_id = "", ""
    try:
        build_id = parse_build_id(html)
    except SiteFormatError as exc:
        no_build_id = str(exc)
    return HomePage(config, build_id, no_config, no_build_id)
