"""The checks of one value of a product line, shared by every line shape.

Pure functions: a value in, its normalised form out, or :class:`LineError` with the reason
that goes to the quarantine file. Values repeated on many lines (companies, SKUs, stores,
barcodes, times) are memoised by value (:class:`Memo`). :mod:`colesbarcodes.inbox.lines`
reads the line shapes with these.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from colesbarcodes.gtin import parse_gtin, shown

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "DEFAULT_COMPANY",
    "INTEGER_SKU_COMPANIES",
    "MAX_CACHED",
    "MAX_INT_SKU",
    "MAX_MONEY",
    "MAX_TEXT",
    "ROUNDED_MONEY",
    "LineError",
    "Memo",
    "bool_value",
    "companies",
    "company_value",
    "gtins",
    "iso_timestamp_checked",
    "memo_of",
    "money",
    "money_value",
    "normalize_sku",
    "normalize_store_id",
    "rounded_money",
    "skus_memo",
    "state_value",
    "stores_memo",
    "text_value",
    "timestamp_value",
]


DEFAULT_COMPANY = "coles"

INTEGER_SKU_COMPANIES = frozenset({"coles"})

MAX_TEXT = 1000

_MAX_SKU = 64

MAX_INT_SKU = 10**_MAX_SKU - 1

_MAX_EXACT_FLOAT = 2**53  # larger floats are not exact whole numbers any more

_MAX_STATE = 32

MAX_MONEY = 999_999_999.999  # what the database's prices hold: numeric(12, 3)

_MAX_REASON = 300

# Values longer than this are refused before the work that is cached by value, so that
# padded values (a valid one after a megabyte of spaces) never fill the caches.
MAX_CACHED = 64

_COMPANY_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


class LineError(ValueError):
    """A line that cannot be imported; ``reason`` is written to the quarantine file."""

    def __init__(self, reason: str) -> None:
        if len(reason) > _MAX_REASON:  # a reason may quote a value of any length
            reason = reason[: _MAX_REASON - 1] + "…"
        super().__init__(reason)
        self.reason = reason


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
        if value > MAX_INT_SKU:
            raise LineError(f"sku longer than {_MAX_SKU} digits")
        return str(value)
    if not isinstance(value, str):
        raise LineError(f"sku must be a number or a string, not {type(value).__name__}")
    text = value.strip()
    if not text:
        raise LineError("missing sku")
    if len(text) > _MAX_SKU:
        raise LineError(f"sku longer than {_MAX_SKU} characters")
    if company in INTEGER_SKU_COMPANIES:
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
    if len(value) > MAX_CACHED if isinstance(value, str) else abs(value) >= 10**32:
        raise LineError(f"bad store_id {shown(value, None)}: too long")
    text = str(value).strip()
    if not text or len(text) > 32 or not text.isprintable():
        raise LineError(f"bad store_id {value!r}")
    if company == "coles" and text.isdigit():
        text = text.rjust(4, "0")
    return text


def text_value(value: Any, key: str) -> str | None:
    if value.__class__ is str:  # the common case first
        text: str = value.strip()
        if len(text) > MAX_TEXT:
            raise LineError(f"{key} longer than {MAX_TEXT} characters")
        if "\x00" in text:
            raise LineError(f"{key} contains a NUL character")
        return text or None
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            value = str(value)
        except ValueError:  # an integer of thousands of digits
            raise LineError(f"{key} longer than {MAX_TEXT} characters") from None
    if not isinstance(value, str):
        raise LineError(f"{key} must be a string, not {type(value).__name__}")
    text = str.strip(value)
    if len(text) > MAX_TEXT:
        raise LineError(f"{key} longer than {MAX_TEXT} characters")
    if "\x00" in text:
        raise LineError(f"{key} contains a NUL character")
    return text or None


# Rounded prices by value: listing files repeat the same prices on many lines, and
# ``round`` is slower than a dict lookup. Bounded, so arbitrary input cannot grow it.
ROUNDED_MONEY: dict[float, float] = {}

_ROUNDED_MAX = 1 << 16


def money_value(value: Any, key: str) -> float | None:
    """:func:`money` with a fast path for positive JSON numbers in range (NaN fails the
    comparison; zeros take the general path, where -0.0 stays -0.0)."""
    if value.__class__ is float and 0.0 < value <= MAX_MONEY:
        rounded = ROUNDED_MONEY.get(value)
        return rounded_money(value) if rounded is None else rounded
    if value is None:
        return None
    return money(value, key)


def rounded_money(value: float) -> float:
    rounded = round(value, 3)
    if len(ROUNDED_MONEY) < _ROUNDED_MAX:
        ROUNDED_MONEY[value] = rounded
    return rounded


def money(value: object, key: str) -> float | None:
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
    if number != number or number < 0 or number > MAX_MONEY:  # NaN, negative, absurd
        raise LineError(f"{key} {value!r} is out of range")
    return round(number, 3)


def state_value(value: object) -> str | None:
    state = text_value(value, "state")
    if state is not None and len(state) > _MAX_STATE:
        raise LineError(f"state longer than {_MAX_STATE} characters")
    return state


def bool_value(value: object, key: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise LineError(f"{key} must be true or false")


def _iso_timestamp(value: str) -> datetime:
    if len(value) > MAX_CACHED:
        raise ValueError("too long")
    moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso_timestamp_checked(value: str) -> datetime | None:
    if not value:
        return None
    try:
        return _times[value] if len(value) <= MAX_CACHED else _iso_timestamp(value)
    except ValueError:
        raise LineError(f"scraped_at {value!r} is not an ISO 8601 time") from None
    except OverflowError:  # e.g. the last second of year 9999 at a negative offset
        raise LineError(f"scraped_at {value!r} is out of range") from None


def timestamp_value(value: object) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(float(value), UTC)
        except (OverflowError, OSError, ValueError):
            raise LineError(f"scraped_at {shown(value, None)} is out of range") from None
    if not isinstance(value, str):
        raise LineError("scraped_at must be an ISO 8601 string")
    return iso_timestamp_checked(value)


def company_value(value: object) -> str:
    if value is None or value == "":
        return DEFAULT_COMPANY
    if (
        not isinstance(value, str)
        or len(value) > MAX_CACHED
        or not _COMPANY_RE.match(value.strip().lower())
    ):
        raise LineError(f"bad company {shown(value, None)}")
    return value.strip().lower()


class Memo(dict[Any, Any]):
    """The successes of a pure function of one value, by value (a failure raises and is
    not kept). Listing files repeat the same companies, stores, SKUs, barcodes and times
    on many lines (a day's files name each SKU once per store), and a dict look-up costs
    less than an ``lru_cache`` call. Bounded: emptied when full. Callers pass only
    ``str`` (or ``int``, never ``bool``) values no longer than ``MAX_CACHED``."""

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

companies = Memo(company_value)

gtins = Memo(parse_gtin)

_times = Memo(_iso_timestamp)

skus_memo: dict[str, Memo] = {}  # per company

stores_memo: dict[str, Memo] = {}  # per company


def memo_of(memos: dict[str, Memo], company: str, function: Callable[[str, Any], Any]) -> Memo:
    memo = memos.get(company)
    if memo is None:
        memo = memos[company] = Memo(functools.partial(function, company))
    return memo
