"""What every page and JSON document of the site shares: ``__NEXT_DATA__``, JSON-LD, and the
error a document of the wrong shape raises. Pure functions, no Scrapy."""

from __future__ import annotations

import re
from typing import Any

import orjson

__all__ = [
    "SiteFormatError",
    "count_value",
    "json_ld_objects",
    "json_object",
    "parse_next_data",
    "text_value",
]


_NEXT_DATA_RE = re.compile(
    rb'<script[^>]*\bid="__NEXT_DATA__"[^>]*>(.*?)</script>', re.DOTALL | re.IGNORECASE
)


_JSON_LD_RE = re.compile(
    rb'<script[^>]*type="application/ld\+json"[^>]*>(.*?)</script>', re.DOTALL | re.IGNORECASE
)


class SiteFormatError(ValueError):
    """A page or JSON document that does not have the shape the site is known to serve."""


def parse_next_data(html: bytes) -> dict[str, Any]:
    match = _NEXT_DATA_RE.search(html)
    if match is None:
        raise SiteFormatError("no __NEXT_DATA__ script in the page")
    try:
        data = orjson.loads(match.group(1))
    except orjson.JSONDecodeError as exc:
        raise SiteFormatError(f"__NEXT_DATA__ is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SiteFormatError("__NEXT_DATA__ is not an object")
    return data


def text_value(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def json_ld_objects(html: bytes) -> list[Any]:
    """Every JSON-LD object of a page (a script may hold one, a list, or an ``@graph``)."""
    found: list[Any] = []
    for match in _JSON_LD_RE.finditer(html):
        try:
            ld = orjson.loads(match.group(1))
        except orjson.JSONDecodeError:
            continue
        for item in ld if isinstance(ld, list) else [ld]:
            found.append(item)
            if isinstance(item, dict) and isinstance(item.get("@graph"), list):
                found.extend(item["@graph"])
    return found


def json_object(body: bytes, what: str) -> dict[str, Any]:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise SiteFormatError(f"{what} is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise SiteFormatError(f"{what} is not a JSON object")
    return document


def count_value(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
