"""Exits: the addresses a crawl leaves from (direct, or forward proxies from ``COLES_PROXIES``).

Imperva's block page is a verdict on the client's address: no browser solves it, another
exit may be accepted. Public clients (2026) report that datacenter addresses get blocked
while Australian residential ones get content, so they keep one sticky exit per client and
move on when blocked. Pure parsing here; the middleware lives in
:mod:`colesbarcodes.middlewares`. Credentials never leave this module in a label.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from scrapy.exceptions import IgnoreRequest

from colesbarcodes.config import ConfigurationError
from colesbarcodes.site.retailer import UnknownRetailer, site_protection

if TYPE_CHECKING:
    from scrapy.settings import BaseSettings

    from colesbarcodes.site.retailer import SiteProtection

__all__ = [
    "BlockedByProtection",
    "Exit",
    "ProxyConfigError",
    "exits_from_setting",
    "parse_proxies",
    "protection_of",
]


class BlockedByProtection(IgnoreRequest):
    """The site's protection kept answering the block page on every exit tried."""


class ProxyConfigError(ConfigurationError):
    """``COLES_PROXIES`` names something that is not a usable proxy URL."""


@dataclass(frozen=True, slots=True)
class Exit:
    """One way out: ``url`` is ``None`` for a direct connection."""

    index: int
    url: str | None = None

    @property
    def label(self) -> str:
        """For logs and stats: scheme, host and port, never credentials."""
        if self.url is None:
            return "direct"
        parts = urlsplit(self.url)
        return f"proxy {self.index + 1} ({parts.scheme}://{parts.hostname}:{parts.port})"

    @property
    def secrets(self) -> list[str]:
        """The user name and password in the URL (and both as written in it), for masking
        wherever an answer or a saved file might repeat them."""
        if self.url is None:
            return []
        parts = urlsplit(self.url)
        found = [unquote(p) for p in (parts.username, parts.password) if p]
        if parts.username and parts.password:
            found.append(f"{parts.username}:{parts.password}")
        return found

    def playwright_proxy(self) -> dict[str, str] | None:
        """The proxy option of a Playwright browser context leaving through this exit."""
        if self.url is None:
            return None
        parts = urlsplit(self.url)
        proxy = {"server": f"{parts.scheme}://{parts.hostname}:{parts.port}"}
        if parts.username:
            proxy["username"] = unquote(parts.username)
            proxy["password"] = unquote(parts.password or "")
        return proxy


def _entries(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        raw = [str(v) for v in value]
    else:
        raw = str(value).replace(",", "\n").splitlines()
    entries: list[str] = []
    for entry in (e.strip() for e in raw):
        if not entry or entry.startswith("#"):
            continue
        if entry.startswith("@"):
            path = Path(entry[1:]).expanduser()
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ProxyConfigError(
                    f"COLES_PROXIES: cannot read {path} ({exc.strerror}): give a file of "
                    "proxy URLs, one a line"
                ) from None
            entries.extend(_entries(text))
        else:
            entries.append(entry)
    return entries


def parse_proxies(value: Any) -> list[str]:
    """Proxy URLs from a setting: ``http://[user:pass@]host:port`` entries separated by
    commas or new lines, or ``@FILE`` (one per line, ``#`` comments)."""
    urls = []
    for number, entry in enumerate(_entries(value), 1):
        parts = urlsplit(entry if "://" in entry else f"http://{entry}")
        try:
            port = parts.port
        except ValueError:
            port = None
        if parts.scheme not in ("http", "https") or not parts.hostname or port is None:
            raise ProxyConfigError(
                f"COLES_PROXIES entry {number} ({parts.scheme}://{parts.hostname or '?'}...) "
                "is not http://[user:password@]host:port: give forward proxies such as "
                "http://proxy.example:3128"
            )
        urls.append(parts.geturl())
    return urls


def exits_from_setting(value: Any) -> list[Exit]:
    """The crawl's exits: the proxies in order, or one direct exit when there are none."""
    urls = parse_proxies(value)
    if not urls:
        return [Exit(0)]
    return [Exit(index, url) for index, url in enumerate(urls)]


def protection_of(settings: BaseSettings) -> SiteProtection:
    """The protection of the retailer the crawl visits (``CRAWL_RETAILER``, which each
    spider sets): Imperva's pages for Coles, Akamai's for Woolworths. An unknown name is
    a ConfigurationError."""
    name = str(settings.get("CRAWL_RETAILER") or "coles").strip().lower()
    try:
        return site_protection(name)
    except UnknownRetailer as exc:
        raise ConfigurationError(f"the setting CRAWL_RETAILER: {exc}") from None
