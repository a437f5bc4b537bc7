"""What a batch knows of the products, changed line by line by the barcode rules.

Pure: no database. :mod:`colesbarcodes.db.catalog` states the rules; the reader fills
this state from the database and the writer stores what changed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from datetime import datetime

    from colesbarcodes.gtin import Gtin
    from colesbarcodes.inbox.lines import ProductLine

__all__ = ["Amounts", "BatchState", "BatchStats", "PriceState", "ProductState"]


@dataclass
class BatchStats:
    lines: int = 0
    products_created: int = 0
    skus_created: int = 0
    barcodes_set: int = 0
    merges: int = 0
    conflicts: int = 0
    prices_written: int = 0
    price_changes: int = 0

    def add(self, other: BatchStats) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


class ProductState(msgspec.Struct, gc=False):
    """A product as the batch knows it (a Struct: made in C, untracked by the collector)."""

    key: int  # the database id, or a negative placeholder for a product not inserted yet
    barcode: str | None
    scope: str | None
    name: str | None
    brand: str | None
    size: str | None
    dirty: bool = False
    merged_into: int | None = None


Amounts = tuple[float | None, float | None, float | None]  # price, was price, unit price


class PriceState(msgspec.Struct, gc=False):
    """A batch's observations of one SKU at one store (one per line of a day's files: a
    Struct is made in C, and the garbage collector need not track it)."""

    first: Amounts
    first_seen: datetime
    last: Amounts
    last_seen: datetime
    available: bool | None
    url: str | None
    # (previous price, price, was price, unit price, seen) for changes within the batch;
    # made on the first change (most store and SKU pairs are seen once per batch)
    changes: (
        list[tuple[float | None, float | None, float | None, float | None, datetime]] | None
    ) = None
    # the stored amounts, last_seen, available and url, read with the SKU (PostgreSQL)
    stored: (
        tuple[float | None, float | None, float | None, datetime, bool | None, str | None] | None
    ) = None
    copied: bool = False  # written already (``BatchWriter.new_prices_copied``)


class BatchState:
    """What a batch knows of the products: read from the database, then changed by its
    lines following the rules."""

    def __init__(self) -> None:
        self.products: dict[int, ProductState] = {}
        self.sku_product: dict[tuple[str, str], int] = {}
        self.sku_pk: dict[tuple[str, str], int] = {}
        self.barcode_owner: dict[str, int] = {}
        self.new_skus: list[tuple[str, str]] = []
        self.merges: list[tuple[int, int, str, str]] = []  # merged, survivor, reason, source
        self.conflicts: list[dict[str, Any]] = []
        self._next_placeholder = -1
        self.barcodes_set = 0

    def remember(
        self,
        product_id: int,
        barcode: str | None,
        scope: str | None,
        name: str | None,
        brand: str | None,
        size: str | None,
    ) -> None:
        """Take a product read from the database, unless the batch knows it already."""
        if product_id not in self.products:
            self.products[product_id] = ProductState(product_id, barcode, scope, name, brand, size)
            if barcode:
                self.barcode_owner[barcode] = product_id

    def resolve(self, key: int) -> ProductState:
        product = self.products[key]
        while product.merged_into is not None:
            product = self.products[product.merged_into]
        return product

    def new_product(self, line: ProductLine, gtin: Gtin | None) -> ProductState:
        key = self._next_placeholder
        self._next_placeholder -= 1
        product = ProductState(key, None, None, line.name, line.brand, line.size)
        self.products[key] = product
        if gtin is not None:
            self._set_barcode(product, gtin)
        return product

    def _set_barcode(self, product: ProductState, gtin: Gtin) -> None:
        product.barcode, product.scope, product.dirty = gtin.code, gtin.scope.value, True
        self.barcodes_set += 1
        self.barcode_owner[gtin.code] = product.key

    def conflict(
        self, product: ProductState, line: ProductLine, gtin: Gtin, reason: str, source: str
    ) -> None:
        self.conflicts.append(
            {
                "product_key": product.key,
                "company": line.company,
                "sku": line.sku,
                "existing_barcode": product.barcode or "",
                "offered_barcode": gtin.code,
                "reason": reason,
                "source": source,
            }
        )

    def observe(self, key: tuple[str, str], line: ProductLine, source: str, number: int) -> None:
        """Apply one line's product facts to the in-memory state, following the rules.

        ``key`` is the line's (company, SKU); ``source:number`` names the line in merges
        and conflicts. The usual line (a known SKU whose product needs no barcode change)
        takes the short path at the top.
        """
        gtin = line.barcode
        known = self.sku_product.get(key)
        if known is not None:
            product = self.products[known]
            if product.merged_into is not None:
                product = self.resolve(known)
            if gtin is not None and product.barcode != gtin.code:
                product = self._offer_barcode(product, line, gtin, f"{source}:{number}")
        else:
            product = self._new_sku(key, line, gtin, f"{source}:{number}")
        value = line.name
        if value is not None and product.name != value:
            product.name = value
            product.dirty = True
        value = line.brand
        if value is not None and product.brand != value:
            product.brand = value
            product.dirty = True
        value = line.size
        if value is not None and product.size != value:
            product.size = value
            product.dirty = True

    def _new_sku(
        self, key: tuple[str, str], line: ProductLine, gtin: Gtin | None, source: str
    ) -> ProductState:
        owner = self.barcode_owner.get(gtin.code) if gtin else None
        if gtin is not None and owner is not None and gtin.is_global:
            product = self.resolve(owner)
        elif gtin is not None and owner is not None:
            product = self.new_product(line, None)
            self.conflict(product, line, gtin, "non-global code held by another product", source)
        else:
            product = self.new_product(line, gtin)
        self.sku_product[key] = product.key
        self.new_skus.append(key)
        return product

    def _offer_barcode(
        self, product: ProductState, line: ProductLine, gtin: Gtin, source: str
    ) -> ProductState:
        """A known SKU's line offers a barcode its product does not hold; returns the
        product the line's facts now apply to (the survivor, after a merge)."""
        owner_key = self.barcode_owner.get(gtin.code)
        if product.barcode is not None:
            self.conflict(product, line, gtin, "product has a different barcode", source)
        elif owner_key is None:
            self._set_barcode(product, gtin)
        elif gtin.is_global:
            survivor = self.resolve(owner_key)
            self._merge(product, survivor, f"same barcode {gtin.code}", source)
            product = survivor
        else:
            self.conflict(product, line, gtin, "non-global code held by another product", source)
        return product

    def _merge(
        self, merged: ProductState, survivor: ProductState, reason: str, source: str
    ) -> None:
        merged.merged_into = survivor.key
        for attr in ("name", "brand", "size"):
            if getattr(survivor, attr) is None and getattr(merged, attr) is not None:
                setattr(survivor, attr, getattr(merged, attr))
                survivor.dirty = True
        if merged.key > 0:
            self.merges.append((merged.key, survivor.key, reason, source))
