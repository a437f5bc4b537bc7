"""Reading one product file's lines: what its name says, and the fields nobody reads.

A file's name may name a store (``…store-0584…``) and a company (``woolworths_…``,
``coles_…``): lines without their own ``store_id`` or ``company`` take them from there,
else the documented default company (``coles``); the company is never guessed from
anything else. Fields of a canonical line the loader does not know are gathered, each
once, with the known field it most likely meant (``Barcode`` → ``barcode``), for the
import summary: a misspelt field is otherwise silently empty.

The check costs next to nothing on the hot path: a canonical line of the common value
types is decoded straight into its fields (``lines.fast_canonical_line``), which only
succeeds when it has no other field; other lines' keys are looked at only when they
differ from the previous line's (a file's lines mostly share one key order).
"""

from __future__ import annotations

import difflib
import re
from typing import Any

import orjson

from colesbarcodes.inbox.lines import (
    CANONICAL_FIELDS,
    DEFAULT_COMPANY,
    LineRows,
    ProductLine,
    canonical_line,
    decode_line,
    fast_canonical_line,
    read_object,
    store_from_filename,
)
from colesbarcodes.site.woolworths import COMPANY as WOOLWORTHS

__all__ = ["FILE_NAME_COMPANIES", "LineReader", "company_from_filename", "did_you_mean"]

# The companies a file name may name (as a word: ``woolworths_2026-11-23.jsonl``).
FILE_NAME_COMPANIES = (DEFAULT_COMPANY, WOOLWORTHS)
_COMPANY_IN_NAME_RE = re.compile(
    r"(?<![a-z0-9])(" + "|".join(FILE_NAME_COMPANIES) + r")(?![a-z0-9])", re.IGNORECASE
)
# Other names of the canonical fields: other retailers' and common spellings.
_ALIASES = {
    "stockcode": "sku",
    "id": "sku",
    "productid": "sku",
    "gtin13": "barcode",
    "ean": "barcode",
    "upc": "barcode",
    "displayname": "name",
    "title": "name",
    "packagesize": "size",
    "cupprice": "unit_price",
    "wasprice": "was_price",
    "isavailable": "available",
    "isinstock": "available",
    "availability": "available",
    "storeid": "store_id",
    "store": "store_id",
    "storename": "store_name",
    "scrapedat": "scraped_at",
    "urlfriendlyname": "url",
}
_MAX_UNKNOWN = 20  # unknown fields kept per file: a hostile file cannot grow the report
_MAX_SHOWN = 64  # characters of an unknown field's name kept
_MAX_KEY_SETS = 256  # key orders remembered per file as known to be checked
_MAX_REMEMBERED_KEYS = 64  # longer key orders are checked again when met again
# A file's reader stops trying the fast decode of canonical lines (which fails on a line
# with another field, a raw row or a value of another type) once it has failed this
# many times and more often than not: such a file's lines are then decoded once each.
_FAST_TRIAL = 100


def company_from_filename(name: str) -> str | None:
    """The company a file name names (``woolworths_store-1234.jsonl`` → ``woolworths``);
    ``None`` when it names none, or more than one."""
    named = {match.lower() for match in _COMPANY_IN_NAME_RE.findall(name)}
    return named.pop() if len(named) == 1 else None


def did_you_mean(field: str) -> str | None:
    """The canonical field an unknown one most likely meant: the same name in another case
    or spelling (``Barcode``, ``WasPrice``, ``unit-price``), another name for it
    (``Stockcode`` → ``sku``), or a close one (``barcdoe``); ``None`` when none is."""
    if len(field) > _MAX_SHOWN:
        return None
    folded = field.strip().lower().replace("-", "_").replace(" ", "_")
    if folded in CANONICAL_FIELDS:
        return folded
    squashed = folded.replace("_", "")
    for known in CANONICAL_FIELDS:
        if known.replace("_", "") == squashed:
            return known
    if squashed in _ALIASES:
        return _ALIASES[squashed]
    close = difflib.get_close_matches(folded, sorted(CANONICAL_FIELDS), n=1, cutoff=0.75)
    return close[0] if close else None


class LineReader:
    """Reads the lines of one product file (its name gives the defaults).

    :meth:`read` gives a :class:`ProductLine` for a line of one product, else the
    :class:`LineRows` of a line of skipped or several rows; raises LineError.
    ``unknown_fields`` maps each field of its canonical lines that the loader does not
    read to the field it probably meant (or ``None``), in the order they were met.
    """

    __slots__ = (
        "_checked",
        "_fast",
        "_fast_read",
        "_last_keys",
        "_missed",
        "default_company",
        "default_store",
        "file_company",
        "unknown_fields",
    )

    def __init__(self, file_name: str | None = None) -> None:
        self.default_store = store_from_filename(file_name) if file_name else None
        self.file_company = company_from_filename(file_name) if file_name else None
        self.default_company = self.file_company or DEFAULT_COMPANY
        self.unknown_fields: dict[str, str | None] = {}
        self._last_keys: tuple[str, ...] = ()
        self._checked: set[tuple[str, ...]] = set()
        self._fast = True
        self._fast_read = self._missed = 0

    def read(self, raw: bytes | str) -> ProductLine | LineRows:
        if self._fast:
            line = fast_canonical_line(raw, self.default_store, self.default_company)
            if line is not None:
                self._fast_read += 1
                return line
            self._missed += 1
            if self._missed >= _FAST_TRIAL and self._missed > self._fast_read:
                self._fast = False  # a file of other shapes: one decode per line, not two
        try:
            obj: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            decode_line(raw)  # raises LineError with the reason
            raise
        return self.read_object(obj)

    def read_object(self, obj: Any) -> ProductLine | LineRows:
        """:meth:`read` for a value already decoded."""
        if obj.__class__ is dict and "_type" not in obj and "sku" in obj:  # canonical
            keys = tuple(obj)
            if keys != self._last_keys:
                self._see(keys)
            return canonical_line(obj, self.default_store, self.default_company)
        return read_object(obj, self.default_store, self.file_company)

    def _see(self, keys: tuple[str, ...]) -> None:
        self._last_keys = keys
        if keys in self._checked:
            return
        if len(keys) <= _MAX_REMEMBERED_KEYS:  # a line of thousands of keys is not kept
            if len(self._checked) >= _MAX_KEY_SETS:
                self._checked.clear()
            self._checked.add(keys)
        unknown = self.unknown_fields
        for key in keys:
            if key not in CANONICAL_FIELDS and len(unknown) < _MAX_UNKNOWN:
                shown = key if len(key) <= _MAX_SHOWN else key[: _MAX_SHOWN - 1] + "…"
                if not shown.isprintable():
                    shown = repr(shown)[1:-1]
                if shown not in unknown:
                    unknown[shown] = did_you_mean(key)
