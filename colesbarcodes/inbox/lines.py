"""Parsing of product lines: the one place that knows the inbox line shapes.

Two shapes are accepted, one JSON object per line:

* the canonical shape ``{"company", "store_id", "sku", "name", "brand", "size", "price",
  "was_price", "unit_price", "barcode", "url", "scraped_at"}`` (``company`` defaults to
  ``coles``; ``barcode`` may be missing, null, a string or a number), and
* the raw product rows of Coles' listing JSON (``_type == "PRODUCT"``, ``id`` is the SKU,
  prices under ``pricing``). Ad and cross-sell rows of that JSON are skipped, not errors.

Other retailers' raw rows (Woolworths' ``Stockcode`` rows and whole listing answers) are
read by :mod:`colesbarcodes.inbox.retailer_rows`; this module only hands them over.

Everything here is pure: bytes in, a :class:`ProductLine` (or ``None`` for a skipped row)
out, or :class:`LineError` with a reason that goes to the quarantine file. A line that
holds several rows gives a :class:`LineRows` (:func:`read_object`). The checks of each
value are in :mod:`colesbarcodes.inbox.line_values`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime  # noqa: TC003 (msgspec reads the Structs' annotations at run time)
from typing import Annotated, Any

import msgspec
import orjson

from colesbarcodes.gtin import Gtin, InvalidGtin, parse_gtin
from colesbarcodes.inbox.line_values import (
    DEFAULT_COMPANY,
    INTEGER_SKU_COMPANIES,
    MAX_CACHED,
    MAX_INT_SKU,
    MAX_MONEY,
    MAX_TEXT,
    ROUNDED_MONEY,
    LineError,
    bool_value,
    companies,
    company_value,
    gtins,
    iso_timestamp_checked,
    memo_of,
    money,
    money_value,
    normalize_sku,
    normalize_store_id,
    rounded_money,
    skus_memo,
    state_value,
    stores_memo,
    text_value,
    timestamp_value,
)
from colesbarcodes.site.woolworths.rows import is_listing_answer, is_listing_row

__all__ = [
    "CANONICAL_FIELDS",
    "COLES_AD",
    "DEFAULT_COMPANY",
    "LineError",
    "LineRows",
    "ProductLine",
    "decode_line",
    "fast_canonical_line",
    "normalize_sku",
    "normalize_store_id",
    "parse_line",
    "parse_object",
    "read_object",
    "store_from_filename",
]

# The fields of the canonical line (README "Line format"); others are reported, not read.
CANONICAL_FIELDS = frozenset(
    {
        "company",
        "store_id",
        "sku",
        "name",
        "brand",
        "size",
        "price",
        "was_price",
        "unit_price",
        "available",
        "barcode",
        "gtin",
        "url",
        "scraped_at",
        "store_name",
        "state",
    }
)
COLES_AD = "ad"  # the skip reason of Coles' ad and cross-sell rows
_STORE_IN_NAME_RE = re.compile(r"store[_-]?([0-9A-Za-z]{1,16})(?=[^0-9A-Za-z]|$)", re.IGNORECASE)


class ProductLine(msgspec.Struct, gc=False):
    """One product as a line gives it, its values checked and normalised. A Struct, not a
    dataclass: made in C (a fifth of a dataclass' ``__init__``, once per line of every
    import) and of plain values only, so the garbage collector need not track it."""

    company: str
    sku: str
    store_id: str | None = None
    name: str | None = None
    brand: str | None = None
    size: str | None = None
    price: float | None = None
    was_price: float | None = None
    unit_price: float | None = None
    available: bool | None = None
    barcode: Gtin | None = None
    barcode_error: str | None = None
    url: str | None = None
    scraped_at: datetime | None = None
    store_name: str | None = None
    state: str | None = None


@dataclass(slots=True)
class LineRows:
    """What a line gave that is not one product line: the product lines of a line holding
    several rows (a whole listing answer), each with its place in the line; the reasons of
    the rows skipped (ads, sponsored or marketplace rows); and the rows that could not be
    read, each ``"<place>: <reason>"``, while the line's other rows are imported."""

    lines: list[tuple[str | None, ProductLine]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def store_from_filename(name: str) -> str | None:
    """The store id named in a file name such as ``coles_store-0584_2026-11-24.jsonl``."""
    match = _STORE_IN_NAME_RE.search(name)
    return match.group(1) if match else None


def _text(obj: dict[str, Any], key: str) -> str | None:
    return text_value(obj.get(key), key)


def _barcode(line: ProductLine, value: object) -> None:
    try:
        line.barcode = (
            gtins[value]
            if (value.__class__ is str and len(value) <= MAX_CACHED) or value.__class__ is int
            else parse_gtin(value)
        )
    except InvalidGtin as exc:
        line.barcode_error = exc.reason


def _is_raw_listing_row(obj: dict[str, Any]) -> bool:
    return "_type" in obj or ("sku" not in obj and "id" in obj and "pricing" in obj)


def _from_raw_row(obj: dict[str, Any], default_store: str | None) -> ProductLine | None:
    if obj.get("_type", "PRODUCT") != "PRODUCT":
        return None  # ads and cross-sell tiles are not products
    company = DEFAULT_COMPANY
    line = ProductLine(company=company, sku=normalize_sku(company, obj.get("id")))
    line.store_id = normalize_store_id(company, obj.get("store_id", obj.get("storeId")))
    line.store_id = line.store_id or default_store
    line.name = _text(obj, "name")
    line.brand = _text(obj, "brand")
    line.size = _text(obj, "size")
    pricing = obj.get("pricing")
    if pricing is not None and not isinstance(pricing, dict):
        raise LineError("pricing must be an object")
    if pricing:
        line.price = money(pricing.get("now"), "pricing.now")
        was = money(pricing.get("was"), "pricing.was")
        line.was_price = was or None  # Coles sends 0 for "no was-price"
        unit = pricing.get("unit")
        if unit is not None and not isinstance(unit, dict):
            raise LineError("pricing.unit must be an object")
        if unit:
            line.unit_price = money(unit.get("price"), "pricing.unit.price")
    line.available = bool_value(obj.get("availability"), "availability")
    _barcode(line, obj.get("gtin", obj.get("barcode")))
    line.scraped_at = timestamp_value(obj.get("scraped_at"))
    return line


_ABSENT = object()


def _from_canonical(
    obj: dict[str, Any], default_store: str | None, default_company: str = DEFAULT_COMPANY
) -> ProductLine:
    get = obj.get
    barcode = get("barcode", _ABSENT)
    return _canonical_values(
        default_store,
        default_company,
        get("company"),
        get("sku"),
        get("store_id"),
        get("name"),
        get("brand"),
        get("size"),
        get("price"),
        get("was_price"),
        get("unit_price"),
        get("available"),
        get("gtin") if barcode is _ABSENT else barcode,
        get("url"),
        get("scraped_at"),
        get("store_name"),
        get("state"),
    )


# integers of 64 bits (as orjson, the general way's decoder, reads them): others are read there
_JsonInt = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]


class _CanonicalLine(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A canonical line whose every value has a type the fast path reads: decoded in C
    straight from the line's bytes (no dict), its values checked by :func:`_canonical_values`
    like a decoded dict's. A line with another field or a value of another type fails to
    decode and is read the general way (:func:`read_object`), which words every error."""

    sku: str | _JsonInt
    company: str | None = None
    store_id: str | _JsonInt | None = None
    name: str | None = None
    brand: str | None = None
    size: str | None = None
    price: float | _JsonInt | None = None
    was_price: float | _JsonInt | None = None
    unit_price: float | _JsonInt | None = None
    available: bool | None = None
    barcode: str | _JsonInt | msgspec.UnsetType | None = msgspec.UNSET
    gtin: str | _JsonInt | None = None
    url: str | None = None
    scraped_at: str | None = None
    store_name: str | None = None
    state: str | None = None


_CANONICAL_DECODER = msgspec.json.Decoder(_CanonicalLine)
_NOT_CANONICAL = (msgspec.ValidationError, msgspec.DecodeError)


def fast_canonical_line(
    raw: bytes | str, default_store: str | None, default_company: str = DEFAULT_COMPANY
) -> ProductLine | None:
    """The line as :func:`parse_line` reads it when it is a canonical line of the common
    value types (the bulk of every import), else ``None``: the caller reads it the general
    way. Raises LineError only where the general way raises the same."""
    try:
        line = _CANONICAL_DECODER.decode(raw)
    except _NOT_CANONICAL:
        return None
    barcode = line.barcode
    return _canonical_values(
        default_store,
        default_company,
        line.company,
        line.sku,
        line.store_id,
        line.name,
        line.brand,
        line.size,
        line.price,
        line.was_price,
        line.unit_price,
        line.available,
        line.gtin if barcode is msgspec.UNSET else barcode,
        line.url,
        line.scraped_at,
        line.store_name,
        line.state,
    )


def _canonical_values(  # one argument per field: the hot path builds no dict
    default_store: str | None,
    default_company: str,
    company: Any,
    sku: Any,
    store: Any,
    name: Any,
    brand: Any,
    size: Any,
    price: Any,
    was_price: Any,
    unit_price: Any,
    available: Any,
    barcode: Any,
    url: Any,
    seen: Any,
    store_name: Any,
    state: Any,
) -> ProductLine:
    # The hot path of every import: the common value types are checked inline, anything
    # else goes through the general helpers above (which also word the errors). Fields
    # are validated in a fixed order, so a line with several faults always reports the
    # same one.
    if company is None:
        company = default_company
    elif company.__class__ is str and len(company) <= MAX_CACHED:
        company = companies[company]
    else:
        company = company_value(company)
    if sku.__class__ is int and 0 < sku <= MAX_INT_SKU:
        sku = str(sku)
    elif sku.__class__ is str and len(sku) <= MAX_CACHED:  # SKUs sent as JSON strings
        # a Coles SKU already in canonical form (digits, no leading zero) is its own text
        if not (
            company in INTEGER_SKU_COMPANIES and sku.isdigit() and sku.isascii() and sku[0] != "0"
        ):
            sku = (skus_memo.get(company) or memo_of(skus_memo, company, normalize_sku))[sku]
    else:
        sku = normalize_sku(company, sku)
    if (store.__class__ is str and len(store) <= MAX_CACHED) or store.__class__ is int:
        store = (stores_memo.get(company) or memo_of(stores_memo, company, normalize_store_id))[
            store
        ]
    else:
        store = normalize_store_id(company, store)
    store = store or default_store
    # the texts: a plain string takes the short way (what text_value does for one)
    if name.__class__ is str and len(name) <= MAX_TEXT and "\x00" not in name:
        name = name.strip() or None
    elif name is not None:
        name = text_value(name, "name")
    if brand.__class__ is str and len(brand) <= MAX_TEXT and "\x00" not in brand:
        brand = brand.strip() or None
    elif brand is not None:
        brand = text_value(brand, "brand")
    if size.__class__ is str and len(size) <= MAX_TEXT and "\x00" not in size:
        size = size.strip() or None
    elif size is not None:
        size = text_value(size, "size")
    if price.__class__ is float and 0.0 < price <= MAX_MONEY:  # money_value's fast path
        rounded = ROUNDED_MONEY.get(price)
        price = rounded_money(price) if rounded is None else rounded
    else:
        price = money_value(price, "price")
    if was_price is not None:
        was_price = money_value(was_price, "was_price") or None
    if unit_price is not None:
        unit_price = money_value(unit_price, "unit_price")
    if available is not None and available.__class__ is not bool:
        raise LineError("available must be true or false")
    gtin = barcode_error = None
    if barcode is not None:
        try:
            gtin = (
                gtins[barcode]
                if (barcode.__class__ is str and len(barcode) <= MAX_CACHED)
                or barcode.__class__ is int
                else parse_gtin(barcode)
            )
        except InvalidGtin as exc:
            barcode_error = exc.reason
    if url is not None:
        url = text_value(url, "url")
    if seen is not None:
        seen = iso_timestamp_checked(seen) if seen.__class__ is str else timestamp_value(seen)
    if store_name is not None:
        store_name = text_value(store_name, "store_name")
    if state is not None:
        state = state_value(state)
    return ProductLine(
        company,
        sku,
        store,
        name,
        brand,
        size,
        price,
        was_price,
        unit_price,
        available,
        gtin,
        barcode_error,
        url,
        seen,
        store_name,
        state,
    )


canonical_line = _from_canonical  # for the readers of whole files and other retailers' rows


def read_object(
    obj: object, default_store: str | None = None, file_company: str | None = None
) -> ProductLine | LineRows:
    """A decoded JSON value as a product line, or as the :class:`LineRows` of a skipped row
    or of a line of several rows; raises LineError. ``default_store`` and ``file_company``
    are what the file name says (``None``: nothing); a line's own values win, and a raw
    row's shape names its company whatever the file says."""
    if not isinstance(obj, dict):
        raise LineError(f"a line must be a JSON object, not {type(obj).__name__}")
    if "_type" not in obj and "sku" not in obj and (is_listing_row(obj) or is_listing_answer(obj)):
        from colesbarcodes.inbox import retailer_rows  # here: that module imports this one

        return retailer_rows.read_woolworths(obj, default_store, file_company)
    if _is_raw_listing_row(obj):
        if file_company not in (None, DEFAULT_COMPANY):
            default_store = None  # another retailer's store
        line = _from_raw_row(obj, default_store)
        return LineRows(skipped=[COLES_AD]) if line is None else line
    return _from_canonical(obj, default_store, file_company or DEFAULT_COMPANY)


def parse_object(
    obj: object, default_store: str | None = None, default_company: str | None = None
) -> ProductLine | None:
    """A decoded JSON value as one product line, ``None`` for a skipped row (an ad);
    raises LineError, also for a line of several rows (read those with :func:`read_object`)."""
    read = read_object(obj, default_store, default_company)
    return read if isinstance(read, ProductLine) else _one_line(read)


def _one_line(rows: LineRows) -> ProductLine | None:
    if rows.errors:
        raise LineError(rows.errors[0])
    if len(rows.lines) > 1:
        raise LineError(f"a line of {len(rows.lines)} product rows, where one was expected")
    return rows.lines[0][1] if rows.lines else None


def _decode_error(raw: bytes | str, exc: orjson.JSONDecodeError) -> str:
    """Why a line could not be decoded: bytes that are not UTF-8 first (orjson words them
    as a JSON error), then JSON's own error."""
    if not isinstance(raw, str):
        data = bytes(raw)
        try:
            data.decode()
        except UnicodeDecodeError as bad:
            return f"not valid UTF-8: byte {data[bad.start]:#04x} at position {bad.start}"
    return f"not valid JSON: {exc}"


def decode_line(raw: bytes | str) -> object:
    """The JSON value of a line; raises LineError with the reason a line is unreadable."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise LineError(_decode_error(raw, exc)) from None


def parse_line(
    raw: bytes | str, default_store: str | None = None, default_company: str | None = None
) -> ProductLine | None:
    """One inbox line as a product line, ``None`` for an ad row; raises LineError."""
    line = fast_canonical_line(raw, default_store, default_company or DEFAULT_COMPANY)
    if line is not None:
        return line
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise LineError(_decode_error(raw, exc)) from None
    if obj.__class__ is dict and "_type" not in obj and "sku" in obj:  # the canonical shape
        return _from_canonical(obj, default_store, default_company or DEFAULT_COMPANY)
    return parse_object(obj, default_store, default_company)
