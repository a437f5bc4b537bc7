"""Woolworths' category tree and listing API: which departments to walk, the request for a
listing page, and what its answer holds. Pure functions, no Scrapy.

Seen in the public clients of 2025-10 to 2026-10 (``../shared`` README, "Woolworths in 2026")
and ``../shared/samples/woolworths_listing_category_1.json`` (real, 2024):

* ``GET /apis/ui/PiesCategoriesWithSpecials`` answers ``{"Categories": [node]}``; a node has
  ``NodeId``, ``Description``, ``UrlFriendlyName``, ``IsSpecial`` and ``Children``. The
  departments are the top-level nodes; the root ``specialsgroup`` and each department's
  ``<NodeId>_SPECIALS`` child repeat products listed elsewhere, and Everyday Market
  (``1_A363395``) is third-party sellers, not the shelf: none is walked.
* ``POST /apis/ui/browse/category`` with the JSON body of :func:`listing_body` answers
  ``{"Bundles": [{"Products": [row]}], "TotalRecordCount": N, "Success": true, ...}``, at
  most 36 rows a page (a larger ``pageSize`` is an error). Past the last page the API still
  answers ``Success: true`` with sponsored rows: the last page comes from
  ``TotalRecordCount``, never from an empty page. At most 10,000 products a category.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec
import orjson

from colesbarcodes.site.line_values import MAX_TEXT, line_money, line_sku, line_text
from colesbarcodes.site.woolworths.rows import (
    COMPANY,
    ONLINE_STORE,
    ONLINE_STORE_NAME,
    RowShapeError,
    answer_rows,
    canonical_fields,
    skip_reason,
)

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

__all__ = [
    "CATEGORIES_PATH",
    "EVERYDAY_MARKET",
    "LISTING_PATH",
    "MAX_PRODUCTS",
    "PAGE_SIZE",
    "Department",
    "ListingAnswer",
    "SiteFormatError",
    "api_headers",
    "department_plan",
    "listing_body",
    "listing_line",
    "listing_page_count",
    "parse_category_tree",
    "parse_listing",
]

CATEGORIES_PATH = "/apis/ui/PiesCategoriesWithSpecials"
LISTING_PATH = "/apis/ui/browse/category"
PAGE_SIZE = 36  # rows a listing page holds; a larger pageSize answers an error
MAX_PRODUCTS = 10_000  # the most a category's listing serves
EVERYDAY_MARKET = "1_A363395"  # third-party sellers (marketplace), never the shelf
SPECIALS_GROUP = "specialsgroup"
_SPECIALS_SUFFIX = "_SPECIALS"
_MAX_BARCODE = 64


class SiteFormatError(ValueError):
    """An answer that does not have the shape the site is known to serve: never read as an
    empty tree or an empty listing."""


@dataclass(frozen=True, slots=True)
class Department:
    """A top-level node of the category tree: what one listing walk asks for."""

    node_id: str
    name: str
    slug: str


@dataclass(frozen=True, slots=True)
class ListingAnswer:
    """One listing page: the shelf's rows, the rows left out and the category's total."""

    total: int
    rows: tuple[dict[str, Any], ...]
    sponsored: int = 0  # IsSponsoredAd rows (promoted copies)
    marketplace: int = 0  # IsMarketProduct rows (third-party sellers)
    malformed: int = 0  # entries of Products that are not objects


def _json_object(body: bytes, what: str) -> dict[str, Any]:
    try:
        data = orjson.loads(body)  # listing answers are ~200 KB: orjson reads them 5x faster
    except orjson.JSONDecodeError:
        head = body[:80].decode("utf-8", "replace").strip()
        raise SiteFormatError(f"{what} is not JSON (begins {head!r})") from None
    if not isinstance(data, dict):
        raise SiteFormatError(f"{what} is not a JSON object")
    return data


class _Row(msgspec.Struct):
    """The fields of a listing row this package reads (:func:`canonical_fields`,
    :func:`skip_reason`); the row's other ~100 fields are skipped unread."""

    Stockcode: Any = None
    Barcode: Any = None
    Name: Any = None
    DisplayName: Any = None
    UrlFriendlyName: Any = None
    PackageSize: Any = None
    Brand: Any = None
    Price: Any = None
    WasPrice: Any = None
    CupPrice: Any = None
    IsAvailable: Any = None
    IsInStock: Any = None
    IsSponsoredAd: Any = None
    IsMarketProduct: Any = None


class _Bundle(msgspec.Struct):
    Products: list[_Row]


class _Answer(msgspec.Struct):
    Bundles: list[_Bundle]
    TotalRecordCount: Any = None
    Success: Any = None


_ANSWER = msgspec.json.Decoder(_Answer)


def _answer_object(body: bytes) -> dict[str, Any]:
    """A listing answer as the dict :func:`parse_listing` reads, with only the fields it
    reads. A page is ~300 KB for 36 rows of ~120 fields: decoding just these (msgspec)
    takes about half the time of a whole decode, and the listing crawl is CPU-bound while
    its pages come quickly. An answer not shaped exactly so (no ``Bundles``, a row that is
    not an object, ...) is decoded whole, for the checks below to say what is wrong."""
    try:
        answer = _ANSWER.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return _json_object(body, "the listing answer")
    as_dict = msgspec.structs.asdict
    return {
        "Success": answer.Success,
        "TotalRecordCount": answer.TotalRecordCount,
        "Bundles": [
            {"Products": [as_dict(row) for row in bundle.Products]} for bundle in answer.Bundles
        ],
    }


def _is_special(node: Mapping[str, Any]) -> bool:
    node_id = str(node.get("NodeId") or "")
    return (
        node.get("IsSpecial") is True
        or node_id == SPECIALS_GROUP
        or node_id.upper().endswith(_SPECIALS_SUFFIX)
    )


def _display_order(node: Mapping[str, Any]) -> int:
    order = node.get("DisplayOrder")
    return order if isinstance(order, int) and not isinstance(order, bool) else 0


def parse_category_tree(body: bytes) -> tuple[Department, ...]:
    """The departments of ``PiesCategoriesWithSpecials`` in ``DisplayOrder``, specials
    groupings left out. Raises :class:`SiteFormatError` for an answer without a
    ``Categories`` list, or with no department at all."""
    data = _json_object(body, "the category tree")
    nodes = data.get("Categories")
    if not isinstance(nodes, list):
        raise SiteFormatError("the category tree has no Categories list")
    ordered = sorted((node for node in nodes if isinstance(node, dict)), key=_display_order)
    departments: list[Department] = []
    for node in ordered:
        node_id = node.get("NodeId")
        if not isinstance(node_id, str) or not node_id.strip() or _is_special(node):
            continue
        name = node.get("Description")
        slug = node.get("UrlFriendlyName")
        departments.append(
            Department(
                node_id.strip(),
                name.strip() if isinstance(name, str) and name.strip() else node_id,
                slug.strip() if isinstance(slug, str) else "",
            )
        )
    if not departments:
        raise SiteFormatError("the category tree lists no department")
    return tuple(dict.fromkeys(departments))


def department_plan(
    departments: tuple[Department, ...], skip: Collection[str] = ()
) -> tuple[tuple[Department, ...], tuple[Department, ...]]:
    """(departments to walk, departments left out): Everyday Market always, and those whose
    ``NodeId`` or slug is in ``skip`` (case-insensitive)."""
    skipped_names = {s.strip().lower() for s in skip if s.strip()} | {EVERYDAY_MARKET.lower()}
    listed: list[Department] = []
    skipped: list[Department] = []
    for department in departments:
        names = {department.node_id.lower(), department.slug.lower()}
        (skipped if names & skipped_names else listed).append(department)
    return tuple(listed), tuple(skipped)


def listing_body(department: Department, page: int, page_size: int = PAGE_SIZE) -> bytes:
    """The JSON body a public client posts for one listing page (a tracker, 2026-07): the
    fixed ``url``/``location``/``formatObject`` work for any category; marketplace rows
    hidden (``isHideEverydayMarketProducts``), filtered again on reading."""
    return json.dumps(
        {
            "categoryId": department.node_id,
            "pageNumber": page,
            "pageSize": page_size,
            "sortType": "Name",
            "url": "/shop/browse/fruit-veg",
            "location": "/shop/browse/fruit-veg",
            "formatObject": '{"name":"Fruit & Veg"}',
            "isSpecial": False,
            "isBundle": False,
            "isMobile": False,
            "isHideEverydayMarketProducts": True,
            "filters": [],
            "token": "",
            "gpBoost": 0,
            "isHideUnavailableProducts": False,
            "enableAdReRanking": False,
            "groupEdmVariants": True,
            "categoryVersion": "v2",
        },
        separators=(",", ":"),
    ).encode()


def api_headers(base_url: str, slug: str = "") -> dict[str, str]:
    """What the site's own pages send with an API call: JSON, from the site itself."""
    referer = f"{base_url}/shop/browse/{slug}" if slug else f"{base_url}/"
    return {
        "Accept": "application/json, text/plain, */*",
        "Content-Type": "application/json",
        "Origin": base_url,
        "Referer": referer,
    }


def parse_listing(body: bytes) -> ListingAnswer:
    """A listing answer's shelf rows (sponsored and marketplace rows counted, not kept) and
    ``TotalRecordCount``. Raises :class:`SiteFormatError` for ``Success`` false, or an
    answer without ``Bundles`` or a whole ``TotalRecordCount``: never an empty listing."""
    data = _answer_object(body)
    if data.get("Success") is False:
        raise SiteFormatError("the listing answer says Success: false")
    total = data.get("TotalRecordCount")
    if not isinstance(total, int) or isinstance(total, bool) or total < 0:
        raise SiteFormatError("the listing answer has no TotalRecordCount")
    if "Bundles" not in data:
        raise SiteFormatError("the listing answer has no Bundles")
    rows: list[dict[str, Any]] = []
    sponsored = marketplace = malformed = 0
    try:
        for row in answer_rows(data):
            if not isinstance(row, dict):
                malformed += 1
                continue
            reason = skip_reason(row)
            if reason == "sponsored":
                sponsored += 1
            elif reason == "marketplace":
                marketplace += 1
            else:
                rows.append(row)
    except RowShapeError as exc:
        raise SiteFormatError(f"the listing answer: {exc.reason}") from None
    return ListingAnswer(total, tuple(rows), sponsored, marketplace, malformed)


def listing_page_count(total: int, page_size: int = PAGE_SIZE) -> int:
    """Pages to ask for ``total`` products (at least 1; at most what 10,000 products fill)."""
    shown = min(max(total, 0), MAX_PRODUCTS)
    return max(1, math.ceil(shown / page_size))


def _barcode(value: Any) -> str | None:
    """The barcode as the site sent it (the loader judges it), trimmed; null when absent."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return str(value)
    if isinstance(value, str):
        return value.strip()[:_MAX_BARCODE] or None
    return None


def listing_line(row: Mapping[str, Any], base_url: str, scraped_at: str) -> dict[str, Any] | None:
    """A shelf row as a canonical inbox line (README "Line format"), or ``None`` without a
    usable ``Stockcode``. The store is the online store (anonymous prices are not per
    store); the barcode is kept as sent. Values the loader would refuse become null or are
    shortened, so every line imports."""
    fields = canonical_fields(row, base_url)
    sku = line_sku(fields["sku"], below=10**18)
    if sku is None:
        return None
    available = fields["available"]
    was = line_money(fields["was_price"])
    url = fields.get("url")
    return {
        "company": COMPANY,
        "store_id": ONLINE_STORE,
        "store_name": ONLINE_STORE_NAME,
        "sku": sku,
        "name": line_text(fields["name"]),
        "brand": line_text(fields["brand"]),
        "size": line_text(fields["size"]),
        "price": line_money(fields["price"]),
        "was_price": was or None,
        "unit_price": line_money(fields["unit_price"]),
        "available": available if isinstance(available, bool) else None,
        "barcode": _barcode(fields["barcode"]),
        "url": url[:MAX_TEXT] if isinstance(url, str) else None,
        "scraped_at": scraped_at,
    }
