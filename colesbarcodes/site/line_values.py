"""The values of a canonical inbox line that a listing crawl writes, cleaned from what a
retailer's listing sends so that the loader imports every line: a value the loader would
refuse (a wrong type, a negative or absurd price, a text over 1,000 characters) becomes
null or is shortened. Shared by every retailer's ``listing_line``. Pure."""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_TEXT", "line_money", "line_sku", "line_text"]

MAX_TEXT = 1000  # the loader quarantines longer texts (colesbarcodes.inbox.lines)
_MAX_MONEY = 1e9  # and absurd prices


def line_text(value: Any) -> str | None:
    """A text trimmed and shortened to :data:`MAX_TEXT`; numbers as text; else null."""
    if isinstance(value, str):
        return value.strip()[:MAX_TEXT].strip() or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def line_money(value: Any) -> float | None:
    """A price from a number or a numeric text (``"$3.50"``); null when out of range."""
    if isinstance(value, str):
        try:
            value = float(value.strip().lstrip("$"))
        except ValueError:
            return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    number = float(value)
    return number if 0.0 <= number <= _MAX_MONEY else None  # NaN fails both


def line_sku(value: Any, below: int | None = None) -> int | None:
    """A positive whole-number SKU from a number or digits (less than ``below`` when given);
    else null."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or value <= 0:
        return None
    return value if below is None or value < below else None
