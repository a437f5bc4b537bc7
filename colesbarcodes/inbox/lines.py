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
holds several rows gives a :class:`LineRows` (:func:`read_object`).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
import orjson

from colesbarcodes.gtin import Gtin, InvalidGtin, parse_gtin, shown
from colesbarcodes.site.woolworths.rows import is_listing_answer, is_listing_row

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "CANONICAL_FIELDS",
    "COLES_AD",
    "DEFAULT_COMPANY",
    "LineError",
    "LineRows",
    "ProductLine",
    "decode_line",
    "normalize_sku",
    "normalize_store_id",
    "parse_line",
    "parse_object",
    "read_object",
    "store_from_filename",
]

DEFAULT_COMPANY = "coles"
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
_INTEGER_SKU_COMPANIES = frozenset({"coles"})
_MAX_TEXT = 1000
_MAX_SKU = 64
_MAX_INT_SKU = 10**_MAX_SKU - 1
_MAX_EXACT_FLOAT = 2**53  # larger floats are not exact whole numbers any more
_MAX_STATE = 32
_MAX_MONEY = 999_999_999.999  # what the database's prices hold: numeric(12, 3)
_MAX_REASON = 300
# Values longer than this are refused before the work that is cached by value, so that
# padded values (a valid one after a megabyte of spaces) never fill the caches.
_MAX_CACHED = 64
_COMPANY_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_STORE_IN_NAME_RE = re.compile(r"store[_-]?([0-9A-Za-z]{1,16})(?=[^0-9A-Za-z]|$)", re.IGNORECASE)


class LineError(ValueError):
    """A line that cannot be imported; ``reason`` is written to the quarantine file."""

    def __init__(self, reason: str) -> None:
        if len(reason) > _MAX_REASON:  # a reason may quote a value of any length
            reason = reason[: _MAX_REASON - 1] + "…"
        super().__init__(reason)
        self.reason = reason


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


def normalize_sku(company: str, value: object) -> str:
    """Canonical SKU text: integers (no leading zeros) for Coles, trimmed strings elsewhere."""
    if isinstance(value, bool) or value is None:
        raise LineError("missing sku" if value is None else "sku must be a number or a string")
    if isinstance(value, float):
        if not value.is_integer():
            raise LineError(f"sku {value!r} is not a whole number")
        if abs(value) > _MAX_EXACT_FLOAT:
            raise LineError(f"sku {value!r} is too large for a JSON number: write it as a string")
        value = int(value)
    if isinstance(value, int):
        if value <= 0:
            raise LineError(f"sku {shown(value, None)} is not positive")
        if value > _MAX_INT_SKU:
            raise LineError(f"sku longer than {_MAX_SKU} digits")
        return str(value)
    if not isinstance(value, str):
        raise LineError(f"sku must be a number or a string, not {type(value).__name__}")
    text = value.strip()
    if not text:
        raise LineError("missing sku")
    if len(text) > _MAX_SKU:
        raise LineError(f"sku longer than {_MAX_SKU} characters")
    if company in _INTEGER_SKU_COMPANIES:
        if not (text.isascii() and text.isdigit()) or not text.lstrip("0"):
            raise LineError(f"{company} sku {value!r} is not a positive integer")
        return text.lstrip("0")
    if not text.isprintable():
        raise LineError("sku contains control characters")
    return text


def normalize_store_id(company: str, value: object) -> str | None:
    """Store ids as text; Coles' numeric ids zero-padded to four digits (``584`` → ``0584``)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise LineError("store_id must be a string or a number")
    if len(value) > _MAX_CACHED if isinstance(value, str) else abs(value) >= 10**32:
        raise LineError(f"bad store_id {shown(value, None)}: too long")
    text = str(value).strip()
    if not text or len(text) > 32 or not text.isprintable():
        raise LineError(f"bad store_id {value!r}")
    if company == "coles" and text.isdigit():
        text = text.rjust(4, "0")
    return text


def _text(obj: dict[str, Any], key: str) -> str | None:
    return _text_value(obj.get(key), key)


def _text_value(value: Any, key: str) -> str | None:
    if value.__class__ is str:  # the common case first
        text: str = value.strip()
        if len(text) > _MAX_TEXT:
            raise LineError(f"{key} longer than {_MAX_TEXT} characters")
        if "\x00" in text:
            raise LineError(f"{key} contains a NUL character")
        return text or None
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            value = str(value)
        except ValueError:  # an integer of thousands of digits
            raise LineError(f"{key} longer than {_MAX_TEXT} characters") from None
    if not isinstance(value, str):
        raise LineError(f"{key} must be a string, not {type(value).__name__}")
    text = str.strip(value)
    if len(text) > _MAX_TEXT:
        raise LineError(f"{key} longer than {_MAX_TEXT} characters")
    if "\x00" in text:
        raise LineError(f"{key} contains a NUL character")
    return text or None


# Rounded prices by value: listing files repeat the same prices on many lines, and
# ``round`` is slower than a dict lookup. Bounded, so arbitrary input cannot grow it.
_ROUNDED: dict[float, float] = {}
_ROUNDED_MAX = 1 << 16


def _money_value(value: Any, key: str) -> float | None:
    """:func:`_money` with a fast path for positive JSON numbers in range (NaN fails the
    comparison; zeros take the general path, where -0.0 stays -0.0)."""
    if value.__class__ is float and 0.0 < value <= _MAX_MONEY:
        rounded = _ROUNDED.get(value)
        return _rounded(value) if rounded is None else rounded
    if value is None:
        return None
    return _money(value, key)


def _rounded(value: float) -> float:
    rounded = round(value, 3)
    if len(_ROUNDED) < _ROUNDED_MAX:
        _ROUNDED[value] = rounded
    return rounded


def _money(value: object, key: str) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise LineError(f"{key} must be a number")
    if isinstance(value, str):
        try:
            value = float(value.strip().lstrip("$"))
        except ValueError:
            raise LineError(f"{key} {value!r} is not a number") from None
    if not isinstance(value, int | float):
        raise LineError(f"{key} must be a number, not {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float
        raise LineError(f"{key} {shown(value, None)} is out of range") from None
    if number != number or number < 0 or number > _MAX_MONEY:  # NaN, negative, absurd
        raise LineError(f"{key} {value!r} is out of range")
    return round(number, 3)


def _state(value: object) -> str | None:
    state = _text_value(value, "state")
    if state is not None and len(state) > _MAX_STATE:
        raise LineError(f"state longer than {_MAX_STATE} characters")
    return state


def _bool(value: object, key: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise LineError(f"{key} must be true or false")


def _iso_timestamp(value: str) -> datetime:
    if len(value) > _MAX_CACHED:
        raise ValueError("too long")
    moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _iso_timestamp_checked(value: str) -> datetime | None:
    if not value:
        return None
    try:
        return _times[value] if len(value) <= _MAX_CACHED else _iso_timestamp(value)
    except ValueError:
        raise LineError(f"scraped_at {value!r} is not an ISO 8601 time") from None
    except OverflowError:  # e.g. the last second of year 9999 at a negative offset
        raise LineError(f"scraped_at {value!r} is out of range") from None


def _timestamp(value: object) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(float(value), UTC)
        except (OverflowError, OSError, ValueError):
            raise LineError(f"scraped_at {shown(value, None)} is out of range") from None
    if not isinstance(value, str):
        raise LineError("scraped_at must be an ISO 8601 string")
    return _iso_timestamp_checked(value)


def _company(value: object) -> str:
    if value is None or value == "":
        return DEFAULT_COMPANY
    if (
        not isinstance(value, str)
        or len(value) > _MAX_CACHED
        or not _COMPANY_RE.match(value.strip().lower())
    ):
        raise LineError(f"bad company {shown(value, None)}")
    return value.strip().lower()


class _Memo(dict[Any, Any]):
    """The successes of a pure function of one value, by value (a failure raises and is
    not kept). Listing files repeat the same companies, stores, SKUs, barcodes and times
    on many lines (a day's files name each SKU once per store), and a dict look-up costs
    less than an ``lru_cache`` call. Bounded: emptied when full. Callers pass only
    ``str`` (or ``int``, never ``bool``) values no longer than ``_MAX_CACHED``."""

    __slots__ = ("function",)

    def __init__(self, function: Callable[[Any], Any]) -> None:
        super().__init__()
        self.function = function

    def __missing__(self, key: Any) -> Any:
        value = self.function(key)
        if len(self) >= _MEMO_MAX:
            self.clear()
        self[key] = value
        return value


_MEMO_MAX = 1 << 17
_companies = _Memo(_company)
_gtins = _Memo(parse_gtin)
_times = _Memo(_iso_timestamp)
_skus: dict[str, _Memo] = {}  # per company
_stores: dict[str, _Memo] = {}  # per company


def _memo_of(memos: dict[str, _Memo], company: str, function: Callable[[str, Any], Any]) -> _Memo:
    memo = memos.get(company)
    if memo is None:
        memo = memos[company] = _Memo(functools.partial(function, company))
    return memo


def _barcode(line: ProductLine, value: object) -> None:
    try:
        line.barcode = (
            _gtins[value]
            if (value.__class__ is str and len(value) <= _MAX_CACHED) or value.__class__ is int
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
        line.price = _money(pricing.get("now"), "pricing.now")
        was = _money(pricing.get("was"), "pricing.was")
        line.was_price = was or None  # Coles sends 0 for "no was-price"
        unit = pricing.get("unit")
        if unit is not None and not isinstance(unit, dict):
            raise LineError("pricing.unit must be an object")
        if unit:
            line.unit_price = _money(unit.get("price"), "pricing.unit.price")
    line.available = _bool(obj.get("availability"), "availability")
    _barcode(line, obj.get("gtin", obj.get("barcode")))
    line.scraped_at = _timestamp(obj.get("scraped_at"))
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
    elif company.__class__ is str and len(company) <= _MAX_CACHED:
        company = _companies[company]
    else:
        company = _company(company)
    if sku.__class__ is int and 0 < sku <= _MAX_INT_SKU:
        sku = str(sku)
    elif sku.__class__ is str and len(sku) <= _MAX_CACHED:  # SKUs sent as JSON strings
        # a Coles SKU already in canonical form (digits, no leading zero) is its own text
        if not (
            company in _INTEGER_SKU_COMPANIES and sku.isdigit() and sku.isascii() and sku[0] != "0"
        ):
            sku = (_skus.get(company) or _memo_of(_skus, company, normalize_sku))[sku]
    else:
        sku = normalize_sku(company, sku)
    if (store.__class__ is str and len(store) <= _MAX_CACHED) or store.__class__ is int:
        store = (_stores.get(company) or _memo_of(_stores, company, normalize_store_id))[store]
    else:
        store = normalize_store_id(company, store)
    store = store or default_store
    # the texts: a plain string takes the short way (what _text_value does for one)
    if name.__class__ is str and len(name) <= _MAX_TEXT and "\x00" not in name:
        name = name.strip() or None
    elif name is not None:
        name = _text_value(name, "name")
    if brand.__class__ is str and len(brand) <= _MAX_TEXT and "\x00" not in brand:
        brand = brand.strip() or None
    elif brand is not None:
        brand = _text_value(brand, "brand")
    if size.__class__ is str and len(size) <= _MAX_TEXT and "\x00" not in size:
        size = size.strip() or None
    elif size is not None:
        size = _text_value(size, "size")
    if price.__class__ is float and 0.0 < price <= _MAX_MONEY:  # _money_value's fast path
        rounded = _ROUNDED.get(price)
        price = _rounded(price) if rounded is None else rounded
    else:
        price = _money_value(price, "price")
    if was_price is not None:
        was_price = _money_value(was_price, "was_price") or None
    if unit_price is not None:
        unit_price = _money_value(unit_price, "unit_price")
    if available is not None and available.__class__ is not bool:
        raise LineError("available must be true or false")
    gtin = barcode_error = None
    if barcode is not None:
        try:
            gtin = (
                _gtins[barcode]
                if (barcode.__class__ is str and len(barcode) <= _MAX_CACHED)
                or barcode.__class__ is int
                else parse_gtin(barcode)
            )
        except InvalidGtin as exc:
            barcode_error = exc.reason
    if url is not None:
        url = _text_value(url, "url")
    if seen is not None:
        seen = _iso_timestamp_checked(seen) if seen.__class__ is str else _timestamp(seen)
    if store_name is not None:
        store_name = _text_value(store_name, "store_name")
    if state is not None:
        state = _state(state)
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
