"""PostgreSQL's COPY text format, made by string formatting: several times faster than
the driver's per-value dumping."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from colesbarcodes.db.sqlutil import chunked

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence

    from colesbarcodes.db.batch_state import Amounts, PriceState, ProductState

COPY_NULL = "\\N"


# What COPY's text format escapes in a value (a backslash, and the row and column breaks).
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_str(value: str | None) -> str:
    if value is None:
        return COPY_NULL
    if value.isprintable() and "\\" not in value:  # tabs and line breaks are not printable
        return value
    return value.translate(_COPY_ESCAPES)


class _TextForms(dict[Any, str]):
    """Values' COPY text forms, each made once (a batch repeats a few prices and times)."""

    def __init__(self, form: Callable[[Any], str]) -> None:
        super().__init__()
        self.form = form

    def __missing__(self, value: Any) -> str:
        text = self[value] = self.form(value)
        return text


def _copy_bool(value: bool) -> str:
    return "t" if value else "f"


def _copy_null(_value: None) -> str:
    return COPY_NULL


# COPY's text form of a value, by its type (``repr`` of a float reads back as the same
# number; times keep their offset, as timestamptz reads them).
_COPY_FORMS: dict[type, Callable[[Any], str]] = {
    str: copy_str,
    int: repr,
    float: repr,
    bool: _copy_bool,
    type(None): _copy_null,
    datetime: datetime.isoformat,
}


def copy_row(values: Iterable[Any]) -> str:
    """One row in COPY's text format."""
    forms = _COPY_FORMS
    try:
        return "\t".join([forms[value.__class__](value) for value in values]) + "\n"
    except KeyError as exc:
        raise TypeError(f"no COPY text form for {exc.args[0].__name__}") from None


def _amounts_text(amounts: Amounts) -> str:
    # repr reads back as the same float, and numeric(12, 3) holds the rounded value exactly
    return "\t".join(COPY_NULL if a is None else repr(a) for a in amounts)


def text_array(values: Sequence[str]) -> str:
    """A PostgreSQL array literal of strings (a parameter value, not SQL text): much
    cheaper to make than the driver's per-element array dumping. Every element is quoted,
    so only quotes and backslashes need escaping (SKUs and barcodes hardly ever hold any)."""
    if not values:
        return "{}"
    joined = '","'.join(values)
    if "\\" in joined or joined.count('"') != 2 * (len(values) - 1):  # some need escaping
        joined = '","'.join(v.replace("\\", "\\\\").replace('"', '\\"') for v in values)
    return '{"' + joined + '"}'


def prices_text(store_pk: int, keyed: Sequence[tuple[int, PriceState]]) -> Iterator[str]:
    """Rows of ``PRICE_COLUMNS`` in COPY's text format, in parts of a few thousand rows,
    made by string formatting: several times faster than the driver's per-value dumping."""
    amounts = _TextForms(_amounts_text)
    times = _TextForms(datetime.isoformat)  # with the offset, as timestamptz reads it
    flags = {None: COPY_NULL, True: "t", False: "f"}
    for part in chunked(keyed, 2000):
        yield "".join(
            f"{store_pk}\t{sku_pk}\t{amounts[p.last]}\t{flags[p.available]}\t"
            f"{copy_str(p.url)}\t{times[p.last_seen]}\n"
            for sku_pk, p in part
        )


PRODUCT_COPY_COLUMNS = [
    "id",
    "name",
    "brand",
    "size",
    "barcode",
    "barcode_scope",
    "created_at",
    "updated_at",
]


SKU_COPY_COLUMNS = ["id", "company", "sku", "product_id", "created_at"]


# A batch's changed products, as staged for one set-based update (``BatchWriter``).
PRODUCT_STAGE_COLUMNS = ["id", "name", "brand", "size", "barcode", "barcode_scope", "updated_at"]


def products_text(
    ids: Sequence[int], products: Sequence[ProductState], now: datetime
) -> Iterator[str]:
    """New products as rows of ``PRODUCT_COPY_COLUMNS`` in COPY's text format (barcodes and
    their scopes are digits and names: nothing to escape)."""
    stamp = now.isoformat()
    for part in chunked(list(zip(ids, products, strict=True)), 2000):
        yield "".join(
            f"{pk}\t{copy_str(p.name)}\t{copy_str(p.brand)}\t{copy_str(p.size)}\t"
            f"{p.barcode or COPY_NULL}\t{p.scope or COPY_NULL}\t{stamp}\t{stamp}\n"
            for pk, p in part
        )


def changed_products_text(products: Sequence[ProductState], now: datetime) -> Iterator[str]:
    """Changed products as rows of ``PRODUCT_STAGE_COLUMNS`` in COPY's text format."""
    stamp = now.isoformat()
    for part in chunked(products, 2000):
        yield "".join(
            f"{p.key}\t{copy_str(p.name)}\t{copy_str(p.brand)}\t{copy_str(p.size)}\t"
            f"{p.barcode or COPY_NULL}\t{p.scope or COPY_NULL}\t{stamp}\n"
            for p in part
        )


def skus_text(
    ids: Sequence[int], keys: Sequence[tuple[str, str]], products: Sequence[int], now: datetime
) -> str:
    """New SKUs as rows of ``SKU_COPY_COLUMNS`` in COPY's text format."""
    stamp = now.isoformat()
    return "".join(
        f"{pk}\t{copy_str(company)}\t{copy_str(sku)}\t{product}\t{stamp}\n"
        for pk, (company, sku), product in zip(ids, keys, products, strict=True)
    )
