"""GTIN helpers for the replica's fake catalogue.

The replica is standalone (it imports nothing from the rest of ``colesbarcodes``), so it carries
its own tiny check-digit code: the catalogue must hand out barcodes whose check digits are right,
and say which of its barcodes a correct loader should accept.
"""

from __future__ import annotations

import enum
from typing import Final, Literal

__all__ = [
    "MISSING",
    "Gtin",
    "GtinKind",
    "Missing",
    "check_digit",
    "classify",
    "is_valid",
    "normalise",
    "with_check_digit",
]


class Missing(enum.Enum):
    """Marks a record whose ``gtin`` key is absent (not null, not empty: absent)."""

    MISSING = "missing"


MISSING: Final = Missing.MISSING

Gtin = str | int | None | Literal[Missing.MISSING]
"""What the site's GraphQL record may carry in ``gtin``: a string, a number, null, or no key."""

GtinKind = Literal[
    "global",  # valid, GS1 prefix that is unique worldwide (e.g. 93 Australia)
    "instore",  # valid, prefix 02 or 20-29: variable-weight / in-store code
    "internal",  # valid, prefix 04: company-internal code
    "number",  # valid digits but sent as a JSON number (leading zeros may be lost)
    "missing",  # no gtin key at all
    "null",  # gtin: null
    "empty",  # gtin: ""
    "invalid",  # anything else: wrong check digit, wrong length, letters
]


def check_digit(body: str) -> int:
    """GS1 mod-10 check digit for ``body`` (the digits without the check digit)."""
    total = 0
    for position, char in enumerate(reversed(body)):
        digit = ord(char) - 48
        total += digit * 3 if position % 2 == 0 else digit
    return (10 - total % 10) % 10


def with_check_digit(body: str) -> str:
    """Append the right check digit to ``body``."""
    return body + str(check_digit(body))


def is_valid(code: str) -> bool:
    """True for an 8-, 12-, 13- or 14-digit code with a correct check digit."""
    if len(code) not in (8, 12, 13, 14) or not code.isascii() or not code.isdigit():
        return False
    return check_digit(code[:-1]) == int(code[-1])


def normalise(value: Gtin) -> str | None:
    """The GTIN a correct loader should end with: 13 digits (14 kept), or ``None`` if unusable.

    Numbers are zero-padded to 13 digits, because a JSON number loses the leading zero of
    codes such as ``0xxxxxxxxxxxx``.
    """
    if value is MISSING or value is None or isinstance(value, bool):
        return None
    text = str(value).zfill(13) if isinstance(value, int) else value.strip()
    if not is_valid(text):
        return None
    return text if len(text) == 14 else text.zfill(13)


def classify(value: Gtin) -> GtinKind:
    """Which kind of barcode value this is (see :data:`GtinKind`)."""
    if value is MISSING:
        return "missing"
    if value is None:
        return "null"
    if value == "":
        return "empty"
    code = normalise(value)
    if code is None:
        return "invalid"
    if isinstance(value, int):
        return "number"
    if code.startswith("02") or code[:2] in {f"2{d}" for d in range(10)}:
        return "instore"
    if code.startswith("04"):
        return "internal"
    return "global"
