"""Woolworths' listing rows: ``POST /apis/ui/browse/category`` answers ``{"Bundles": [{"Products":
[row]}], "TotalRecordCount": N, ...}``; each row is one product (``Stockcode`` the SKU,
``Barcode`` its GTIN, ``Price``/``WasPrice``/``CupPrice``, ``IsAvailable``/``IsInStock``).

Seen in ``../shared/samples/woolworths_listing_category_1.json`` (real, 2024) and the public
clients of 2025-10 to 2026-10:

* ``IsSponsoredAd`` rows are promoted copies of products listed elsewhere (they top every
  page, and past the real end the API still answers with them); ``IsMarketProduct`` rows are
  third-party sellers (Everyday Market), not the shelf. Both are skipped, not errors.
* ``WasPrice`` equals ``Price`` when the product is not on special: a was-price only when
  it is higher.
* An anonymous session gets one default fulfilment store, and store parameters change no
  price: Woolworths prices are online prices, kept under the store id :data:`ONLINE_STORE`.
* ``Barcode`` is a string or null; loose produce and the in-store bakery carry in-store
  codes (``02…``), which are not global GTINs (:mod:`colesbarcodes.gtin` says so).

Pure: no validation beyond the shape (the loader validates values; the listing crawl cleans
them), so both read a row through the same field names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

__all__ = [
    "BASE_URL",
    "COMPANY",
    "ONLINE_STORE",
    "ONLINE_STORE_NAME",
    "RowShapeError",
    "answer_rows",
    "canonical_fields",
    "is_listing_answer",
    "is_listing_row",
    "positioned_rows",
    "product_path",
    "skip_reason",
]

COMPANY = "woolworths"
BASE_URL = "https://www.woolworths.com.au"
ONLINE_STORE = "online"
ONLINE_STORE_NAME = "Woolworths online (anonymous session: one default fulfilment store)"

SPONSORED = "sponsored"
MARKETPLACE = "marketplace"


class RowShapeError(ValueError):
    """A listing answer or row that is not shaped as the site sends them."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def is_listing_row(obj: Mapping[str, Any]) -> bool:
    """Whether a decoded object is a raw Woolworths listing row (it has ``Stockcode``)."""
    return "Stockcode" in obj


def is_listing_answer(obj: Mapping[str, Any]) -> bool:
    """Whether a decoded object is a whole listing answer (it has ``Bundles``)."""
    return "Bundles" in obj


def answer_rows(answer: Mapping[str, Any]) -> Iterator[Any]:
    """The product rows of a listing answer, in order (``Bundles[].Products[]``); a value
    that is not an object is yielded as it is, for the caller to refuse. Raises
    :class:`RowShapeError` when ``Bundles`` or a bundle's ``Products`` is not a list."""
    for _, row in positioned_rows(answer):
        yield row


def positioned_rows(answer: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """:func:`answer_rows` with each row's place in the answer (``Bundles[3].Products[0]``),
    so that a row that cannot be read is named where it is."""
    bundles = answer.get("Bundles")
    if not isinstance(bundles, list):
        raise RowShapeError("Bundles must be a list")
    for number, bundle in enumerate(bundles):
        if not isinstance(bundle, dict):
            raise RowShapeError(f"Bundles[{number}] must be an object")
        products = bundle.get("Products")
        if not isinstance(products, list):
            raise RowShapeError(f"Bundles[{number}].Products must be a list")
        for index, row in enumerate(products):
            yield f"Bundles[{number}].Products[{index}]", row


def skip_reason(row: Mapping[str, Any]) -> str | None:
    """``"sponsored"`` or ``"marketplace"`` for rows that are not the shelf, else ``None``."""
    if row.get("IsSponsoredAd") is True:
        return SPONSORED
    if row.get("IsMarketProduct") is True:
        return MARKETPLACE
    return None


def product_path(stockcode: object, slug: object = None) -> str:
    """A product page's path: ``/shop/productdetails/{Stockcode}/{UrlFriendlyName}``."""
    path = f"/shop/productdetails/{stockcode}"
    return f"{path}/{slug}" if isinstance(slug, str) and slug.strip() else path


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def canonical_fields(row: Mapping[str, Any], base_url: str = BASE_URL) -> dict[str, Any]:
    """A row's values under the canonical line's names (README "Line format"), unvalidated:
    ``Stockcode`` → ``sku``, ``Barcode`` → ``barcode``, ``Name`` (else ``DisplayName``) →
    ``name``, ``PackageSize`` → ``size``, ``Brand`` → ``brand``, ``Price`` → ``price``,
    ``WasPrice`` → ``was_price`` only above ``Price``, ``CupPrice`` → ``unit_price``,
    ``IsAvailable`` and ``IsInStock`` → ``available``, the product page → ``url``."""
    name = row.get("Name")
    if name is None or (isinstance(name, str) and not name.strip()):
        name = row.get("DisplayName")
    price: Any = row.get("Price")
    was: Any = row.get("WasPrice")
    if _number(price) and _number(was) and was <= price:
        was = None
    available, in_stock = row.get("IsAvailable"), row.get("IsInStock")
    if isinstance(available, bool) and isinstance(in_stock, bool):
        available = available and in_stock
    stockcode = row.get("Stockcode")
    fields: dict[str, Any] = {
        "company": COMPANY,
        "sku": stockcode,
        "name": name,
        "brand": row.get("Brand"),
        "size": row.get("PackageSize"),
        "price": price,
        "was_price": was,
        "unit_price": row.get("CupPrice"),
        "available": available,
        "barcode": row.get("Barcode"),
    }
    if isinstance(stockcode, int | str) and not isinstance(stockcode, bool):
        fields["url"] = base_url + product_path(stockcode, row.get("UrlFriendlyName"))
    return fields
