"""What the site's home page publishes for the crawls: the build id the listings need, and
the key and GraphQL URL the lookups need. Pure: the page is read once, by the crawl's
:class:`~colesbarcodes.extensions.site_session.SiteSession`, for both.

* ``GET /``: the subscription key in an inline ``window.__RUNTIME_CONFIG__={...}`` script
  (2026), or in ``__NEXT_DATA__.runtimeConfig`` (2024, with ``COLES_GRAPHQL_API_URL``);
  ``buildId`` in ``__NEXT_DATA__``. Without a published GraphQL URL: ``{base}/api/graphql``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import orjson

from colesbarcodes.site.coles.pages import SiteFormatError, parse_next_data

__all__ = [
    "DEFAULT_GRAPHQL_PATH",
    "KEY_IN_NEXT_DATA",
    "KEY_IN_PAGE",
    "KEY_IN_RUNTIME_CONFIG",
    "HomePage",
    "SiteConfig",
    "parse_build_id",
    "parse_site_config",
    "read_home_page",
]


KEY_IN_RUNTIME_CONFIG = "__RUNTIME_CONFIG__"


KEY_IN_NEXT_DATA = "__NEXT_DATA__"


KEY_IN_PAGE = "page"


DEFAULT_GRAPHQL_PATH = "/api/graphql"  # same origin, when the page publishes no URL (2026)


_RUNTIME_CONFIG_RE = re.compile(
    rb"window\.__RUNTIME_CONFIG__\s*=\s*(\{.*?\})\s*;?\s*</script>", re.DOTALL
)


_KEY_ANYWHERE_RE = re.compile(rb'"BFF_API_SUBSCRIPTION_KEY"\s*:\s*"([0-9a-f]{32})"')


@dataclass(frozen=True, slots=True)
class SiteConfig:
    build_id: str
    api_key: str
    graphql_url: str
    key_source: str = KEY_IN_NEXT_DATA  # where the key was found (for the log and site-check)


def _runtime_config_script(html: bytes) -> dict[str, Any] | None:
    match = _RUNTIME_CONFIG_RE.search(html)
    if match is None:
        return None
    try:
        data = orjson.loads(match.group(1))
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def parse_site_config(html: bytes, page_url: str) -> SiteConfig:
    """The build id, API key and GraphQL URL that the site's own pages publish.

    The key is read from ``window.__RUNTIME_CONFIG__`` (2026) or ``__NEXT_DATA__``'s
    ``runtimeConfig`` (2024), whichever the page has, and last from anywhere in the page
    (the pattern public clients use); the GraphQL URL is the published one, else
    ``{origin}/api/graphql``. ``build_id`` is empty when the page has no ``__NEXT_DATA__``.
    """
    try:
        next_data: dict[str, Any] = parse_next_data(html)
    except SiteFormatError:
        next_data = {}
    sources: list[tuple[str, dict[str, Any]]] = []
    script = _runtime_config_script(html)
    if script is not None:
        sources.append((KEY_IN_RUNTIME_CONFIG, script))
    runtime = next_data.get("runtimeConfig")
    if isinstance(runtime, dict):
        sources.append((KEY_IN_NEXT_DATA, runtime))
    key, where, graphql = None, "", None
    for name, config in sources:
        value = config.get("BFF_API_SUBSCRIPTION_KEY")
        if key is None and isinstance(value, str) and value.strip():
            key, where = value.strip(), name
        url = config.get("COLES_GRAPHQL_API_URL")
        if graphql is None and isinstance(url, str) and url.strip():
            graphql = url.strip()
    if key is None:
        match = _KEY_ANYWHERE_RE.search(html)
        if match is not None:
            key, where = match.group(1).decode(), KEY_IN_PAGE
    if key is None:
        raise SiteFormatError(
            "no BFF_API_SUBSCRIPTION_KEY in the page (looked in window.__RUNTIME_CONFIG__, "
            "__NEXT_DATA__.runtimeConfig and the whole page)"
        )
    build_id = next_data.get("buildId")
    return SiteConfig(
        build_id.strip() if isinstance(build_id, str) else "",
        key,
        urljoin(page_url, graphql or DEFAULT_GRAPHQL_PATH),
        where,
    )


def parse_build_id(html: bytes) -> str:
    """The Next.js ``buildId`` every ``/_next/data/`` URL needs (from any page's
    ``__NEXT_DATA__``); it changes with each deployment of the site."""
    build_id = parse_next_data(html).get("buildId")
    if not isinstance(build_id, str) or not build_id.strip():
        raise SiteFormatError("__NEXT_DATA__ has no buildId")
    return build_id.strip()


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
