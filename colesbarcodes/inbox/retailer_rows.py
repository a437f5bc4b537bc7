"""Other retailers' raw rows as product lines: Woolworths' listing rows and whole answers.

A product file may hold, besides canonical lines and Coles' rows (:mod:`.lines`), the rows
of Woolworths' listing API as they come: one row of ``Bundles[].Products[]`` a line
(``Stockcode`` is the SKU), or a whole listing answer on one line (its ``Bundles``: one
line, many products). The row's shape names the company, whatever the file name says.

A row's values are taken under the canonical names by the site's own reading
(:func:`colesbarcodes.site.woolworths.canonical_fields`) and validated as a canonical line
is, so both shapes obey the same limits; a reason names the row's own field
(``Stockcode``, ``Price``) and, inside an answer, the row's place (``Bundles[3].Products[0]``).

Sponsored copies and marketplace rows are skipped and counted, like Coles' ad rows.
Woolworths prices are online prices (an anonymous session's): rows take the store id
``online`` unless the line or the file name names a store.

Pure: no database, no Scrapy.
"""

from __future__ import annotations

from typing import Any

from colesbarcodes.gtin import shown
from colesbarcodes.inbox.lines import LineError, LineRows, ProductLine, canonical_line
from colesbarcodes.site.woolworths import (
    COMPANY,
    ONLINE_STORE,
    ONLINE_STORE_NAME,
    RowShapeError,
    canonical_fields,
    is_listing_row,
    positioned_rows,
    skip_reason,
)

__all__ = ["read_woolworths"]

# The row's own name of each canonical field, for the reasons of rows that cannot be read.
_ROW_NAMES = {
    "sku": "Stockcode",
    "name": "Name",
    "brand": "Brand",
    "size": "PackageSize",
    "price": "Price",
    "was_price": "WasPrice",
    "unit_price": "CupPrice",
    "available": "IsAvailable",
    "barcode": "Barcode",
    "url": "UrlFriendlyName",
}
# Keys a scraper may add to a row, or to a whole answer for all of its rows.
_STORE_KEYS = ("store_id", "storeId")
_SEEN_KEY = "scraped_at"


def _row_reason(reason: str) -> str:
    """A canonical line's reason in the row's own words: ``Price 'x' is not a number``."""
    if reason == "missing sku":
        return "missing Stockcode"
    first, _, rest = reason.partition(" ")
    name = _ROW_NAMES.get(first)
    return f"{name} {rest}" if name is not None and rest else reason


def _own_store(obj: dict[str, Any]) -> object:
    for key in _STORE_KEYS:
        value = obj.get(key)
        if value is not None and value != "":
            return value
    return None


def _row_line(row: dict[str, Any], store: object, seen: object) -> ProductLine:
    """One product row as a line; raises LineError in the row's words."""
    fields = canonical_fields(row)
    stockcode = fields["sku"]
    if isinstance(stockcode, bool) or not isinstance(stockcode, int | str | None):
        raise LineError(f"Stockcode must be a number or a string, not {type(stockcode).__name__}")
    fields["store_id"] = _own_store(row) or store
    fields[_SEEN_KEY] = row.get(_SEEN_KEY, seen)
    try:
        line = canonical_line(fields, None, COMPANY)
    except LineError as exc:
        raise LineError(_row_reason(exc.reason)) from None
    if line.store_id is None:
        line.store_id = ONLINE_STORE
    if line.store_id == ONLINE_STORE:
        line.store_name = ONLINE_STORE_NAME
    return line


def _place(position: str, row: dict[str, Any]) -> str:
    stockcode = row.get("Stockcode")
    if isinstance(stockcode, int | str) and not isinstance(stockcode, bool):
        return f"{position} (Stockcode {shown(stockcode, 24)})"
    return position


def _answer_rows(answer: dict[str, Any], store: object) -> LineRows:
    """Every row of a whole listing answer: product lines, skipped rows, unreadable rows."""
    try:
        rows = list(positioned_rows(answer))
    except RowShapeError as exc:
        raise LineError(f"Woolworths listing answer: {exc.reason}") from None
    store = _own_store(answer) or store
    seen = answer.get(_SEEN_KEY)
    read = LineRows()
    for position, row in rows:
        if not isinstance(row, dict):
            read.errors.append(
                f"{position}: a product row must be an object, not {type(row).__name__}"
            )
            continue
        reason = skip_reason(row)
        if reason is not None:
            read.skipped.append(reason)
            continue
        try:
            read.lines.append((position, _row_line(row, store, seen)))
        except LineError as exc:
            read.errors.append(f"{_place(position, row)}: {exc.reason}")
    if read.errors and not read.lines and not read.skipped:
        raise LineError(f"no row of the listing answer could be read: {read.errors[0]}")
    return read


def read_woolworths(
    obj: dict[str, Any], default_store: str | None, file_company: str | None
) -> ProductLine | LineRows:
    """A raw Woolworths row (``Stockcode``) or a whole listing answer (``Bundles``) as
    product lines; raises LineError for one that cannot be read. The file name's store
    counts only in a file that names no other company."""
    store = default_store if file_company in (None, COMPANY) else None
    if not is_listing_row(obj):
        return _answer_rows(obj, store)
    reason = skip_reason(obj)
    if reason is not None:
        return LineRows(skipped=[reason])
    return _row_line(obj, store, None)
