"""GTIN validation and normalisation, shared by the loader and the crawl.

Barcodes arrive as strings, as JSON numbers (leading zeros lost), with spaces or dashes,
as UPC-A (12 digits), EAN-8, EAN-13 or GTIN-14. One trade item must have one stored
form, so every valid code is normalised to a single canonical string:

* the GTIN-13 form (13 digits) when the code fits in 13 digits, which covers EAN-13,
  UPC-A (as ``0`` + 12 digits) and EAN-8 (zero-padded), and
* the GTIN-14 form only for real GTIN-14 codes (a non-zero indicator digit).

Check digits are verified with python-stdnum. Codes that are valid but not globally
unique (GS1 prefixes 02 and 20-29 are in-store / variable-weight codes, 04 is for
company-internal use) are kept, but flagged so they never merge products.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from stdnum import ean

__all__ = ["Gtin", "GtinScope", "InvalidGtin", "normalize_gtin", "parse_gtin"]


class GtinScope(enum.StrEnum):
    GLOBAL = "global"
    IN_STORE = "in_store"
    COMPANY_INTERNAL = "company_internal"


class InvalidGtin(ValueError):
    """A barcode value that is not a valid GTIN; ``reason`` says why, for quarantine files."""

    def __init__(self, value: object, reason: str) -> None:
        super().__init__(f"invalid GTIN {shown(value)}: {reason}")
        self.value = value
        self.reason = reason


def shown(value: object, limit: int | None = 80) -> str:
    """``repr`` of a value for an error message: of a number or a string only (a container
    may be nested deeper than ``repr`` can go), not of an integer too long to print, and
    cut to ``limit`` characters (None: whole)."""
    if not isinstance(value, str | int | float):
        return f"<{type(value).__name__}>"
    try:
        text = repr(value)
    except ValueError:
        return f"<{type(value).__name__} too long to show>"
    return text if limit is None or len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True, slots=True)
class Gtin:
    code: str
    scope: GtinScope

    @property
    def is_global(self) -> bool:
        return self.scope is GtinScope.GLOBAL

    def __str__(self) -> str:
        return self.code


_MIN_DIGITS = 8
_MAX_DIGITS = 14
# Longer values are refused before any work (and never cached by callers that cache
# valid codes): a barcode written with spaces and dashes is still far shorter.
_MAX_CHARACTERS = 64


def _digits(value: object) -> str:
    if isinstance(value, bool):
        raise InvalidGtin(value, "a boolean is not a barcode")
    if isinstance(value, int):
        if value <= 0:
            raise InvalidGtin(value, "not a positive number")
        if value >= 10**_MAX_CHARACTERS:
            raise InvalidGtin(value, f"too long (more than {_MAX_CHARACTERS} digits)")
        return str(value)
    if isinstance(value, float):
        if not value.is_integer() or value <= 0:
            raise InvalidGtin(value, "not a whole positive number")
        return str(int(value))
    if isinstance(value, str):
        if len(value) > _MAX_CHARACTERS:
            raise InvalidGtin(value, f"too long ({len(value)} characters)")
        # Most barcodes arrive as plain digits: skip the separator clean-up for those.
        text = value if value.isascii() and value.isdigit() else ean.compact(value)
        if not text.isascii() or not text.isdigit():
            raise InvalidGtin(value, "contains characters other than digits")
        return text
    raise InvalidGtin(value, f"unsupported type {type(value).__name__}")


def _scope(gtin13: str) -> GtinScope:
    if gtin13.startswith(("02", "2")):
        return GtinScope.IN_STORE
    if gtin13.startswith("04"):
        return GtinScope.COMPANY_INTERNAL
    return GtinScope.GLOBAL


def parse_gtin(value: object) -> Gtin | None:
    """Validate and normalise a barcode value; ``None`` for an absent one (None or "").

    Raises :class:`InvalidGtin` with a human-readable reason for anything else that is
    not a valid GTIN.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    digits = _digits(value)
    significant = digits.lstrip("0")
    if not significant:
        raise InvalidGtin(value, "all zeros")
    if len(digits) > _MAX_DIGITS and len(significant) > _MAX_DIGITS:
        raise InvalidGtin(value, f"too long ({len(digits)} digits, at most 14)")
    if len(digits) < _MIN_DIGITS:
        raise InvalidGtin(value, f"too short ({len(digits)} digits, at least 8)")
    gtin14 = significant.rjust(_MAX_DIGITS, "0")
    # gtin14 is 14 ASCII digits here, so only the check digit is left to verify.
    if ean.calc_check_digit(gtin14[:-1]) != gtin14[-1]:
        raise InvalidGtin(value, "wrong check digit")
    code = gtin14[1:] if gtin14.startswith("0") else gtin14
    return Gtin(code=code, scope=_scope(gtin14[1:]))


def normalize_gtin(value: object) -> str | None:
    """The canonical string of a barcode value, ``None`` if absent; raises InvalidGtin."""
    gtin = parse_gtin(value)
    return None if gtin is None else gtin.code
