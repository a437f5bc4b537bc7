"""Applying product observations to the database with the barcode rules.

The rules (the same for the loader's imports and the crawl's barcodes):

* a SKU seen for the first time joins the product that already holds its (global) barcode,
  or becomes a new product;
* a barcode offered to a product without one is stored, unless another product holds it:
  the same global GTIN means one trade item, so the two products are merged (the one
  holding the barcode survives and keeps every SKU, price and history row; the merge is
  recorded with a snapshot of the merged row);
* a barcode offered to a product that holds a different one is not applied: the clash is
  recorded in ``barcode_conflicts``. A null barcode never hides or clears a real one;
* in-store and company-internal codes (not global) are stored but never merge products.

A batch is applied in one transaction by :func:`apply_lines`; it reads the state it needs
in a few set-based queries and writes in bulk, so its cost does not grow with the size of
the database. On PostgreSQL the reads can start while the batch's lines are still being
parsed (:class:`BatchReader`, in pipeline mode), the stored prices come with them, and new
prices and rows are COPYed; SQLite goes through a staging table for prices.
"""

from __future__ import annotations

import contextlib
import itertools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    MetaData,
    String,
    Table,
    bindparam,
    delete,
    insert,
    select,
    text,
    update,
)

from colesbarcodes.db.models import (
    BarcodeConflict,
    CompanySku,
    Id,
    Money,
    PriceHistory,
    Product,
    ProductGroupMember,
    ProductMerge,
    Store,
    StorePrice,
    utcnow,
)
from colesbarcodes.db.sqlutil import SQLITE_CHUNK, chunked, sql_in
from colesbarcodes.db.upsert import upsert

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence
    from types import TracebackType

    from sqlalchemy.orm import Session

    from colesbarcodes.gtin import Gtin
    from colesbarcodes.inbox.lines import ProductLine

__all__ = ["BatchReader", "BatchStats", "apply_lines", "merge_products"]

# The staging table for prices: temporary, so it lives only in the connection.
_stage_metadata = MetaData()
stage_prices = Table(
    "stage_prices",
    _stage_metadata,
    Column("store_pk", Id),
    Column("sku_pk", Id),
    Column("price", Money),
    Column("was_price", Money),
    Column("unit_price", Money),
    Column("available", Boolean),
    Column("url", String(1000)),
    Column("last_seen", DateTime(timezone=True)),
    Column("first_price", Money),
    Column("first_was_price", Money),
    Column("first_unit_price", Money),
    Column("first_seen", DateTime(timezone=True)),
    prefixes=["TEMPORARY"],
    # PostgreSQL empties it at every commit (a truncate: no dead rows pile up from batch to
    # batch); SQLite, which lacks the option, is emptied with a DELETE before each use.
    postgresql_on_commit="DELETE ROWS",
)
_STAGE_COLUMNS = [c.name for c in stage_prices.columns]
_PRICE_COLUMNS = _STAGE_COLUMNS[:8]  # keys, last prices, available, url, last_seen
_HISTORY_COLUMNS = [
    "store_pk",
    "sku_pk",
    "previous_price",
    "price",
    "was_price",
    "unit_price",
    "observed_at",
]

# A change is a first observation in the batch that differs from the stored price; later
# observations of the same batch are compared in Python (``_Price.changes``). Older files
# never overwrite newer prices (``last_seen``). PostgreSQL compares the first observation
# in Python too, with the stored price read along with the SKUs (``_PG_SKU_STATE``).
_CHANGED = """
    FROM stage_prices s
    JOIN store_prices p ON p.store_pk = s.store_pk AND p.sku_pk = s.sku_pk
    WHERE p.price {ne} s.first_price OR p.was_price {ne} s.first_was_price
       OR p.unit_price {ne} s.first_unit_price
"""
_UPSERT = """
    INSERT INTO store_prices AS p
        (store_pk, sku_pk, price, was_price, unit_price, available, url, last_seen)
    SELECT store_pk, sku_pk, price, was_price, unit_price, available, url, last_seen
    FROM {source} WHERE true
    ON CONFLICT (store_pk, sku_pk) DO UPDATE SET
        price = excluded.price, was_price = excluded.was_price,
        unit_price = excluded.unit_price,
        available = coalesce(excluded.available, p.available),
        url = coalesce(excluded.url, p.url), last_seen = excluded.last_seen
    WHERE excluded.last_seen >= p.last_seen
"""
_INSERT_HISTORY = """
    INSERT INTO price_history
        (store_pk, sku_pk, previous_price, price, was_price, unit_price, observed_at)
    SELECT s.store_pk, s.sku_pk, p.price, s.first_price, s.first_was_price,
           s.first_unit_price, s.first_seen
"""
_PG_UPSERT = text(_UPSERT.format(source="stage_prices"))
_SQLITE_HISTORY = text(_INSERT_HISTORY + _CHANGED.format(ne="IS NOT"))
_SQLITE_UPSERT = text(_UPSERT.format(source="stage_prices"))

# What a batch reads on PostgreSQL, on the driver's cursor (plain tuples back: SQLAlchemy's
# row processing cost more than the queries). Per company and store: the SKUs with their
# products and their stored prices at that store (if any). Each key is looked up on its
# own through the unique indexes, which keeps the cost in proportion to the batch
# whatever the statistics say: they lag far behind while an import fills the tables, and
# planned from them, ``sku = ANY(array)`` could become a scan of every SKU checking each
# against the whole array. ``OFFSET 0`` keeps the lateral subquery a nested loop. The
# keys come as one array literal (``_text_array``).
_PG_SKU_STATE = """
    SELECT k.sku, s.*
    FROM unnest(%(skus)s::text[]) AS k(sku)
    CROSS JOIN LATERAL (
        SELECT c.id, p.id, p.barcode, p.barcode_scope, p.name, p.brand, p.size,
               x.price::float8, x.was_price::float8, x.unit_price::float8, x.last_seen,
               x.available, x.url
        FROM company_skus c
        JOIN products p ON p.id = c.product_id
        LEFT JOIN store_prices x ON x.sku_pk = c.id
            AND x.store_pk = (SELECT id FROM stores WHERE company = %(company)s
                              AND store_id = %(store)s)
        WHERE c.company = %(company)s AND c.sku = k.sku
        OFFSET 0
    ) s
"""
# The same for SKUs whose products an earlier query of the batch asked for already (a
# listing file names each SKU once per store): their stored prices at the store only.
_PG_PRICE_STATE = """
    SELECT k.sku, s.*
    FROM unnest(%(skus)s::text[]) AS k(sku)
    CROSS JOIN LATERAL (
        SELECT x.price::float8, x.was_price::float8, x.unit_price::float8, x.last_seen,
               x.available, x.url
        FROM company_skus c
        JOIN store_prices x ON x.sku_pk = c.id
            AND x.store_pk = (SELECT id FROM stores WHERE company = %(company)s
                              AND store_id = %(store)s)
        WHERE c.company = %(company)s AND c.sku = k.sku
        OFFSET 0
    ) s
"""
_PG_BARCODE_STATE = """
    SELECT p.*
    FROM unnest(%s::text[]) AS k(barcode)
    CROSS JOIN LATERAL (
        SELECT id, barcode, barcode_scope, name, brand, size FROM products
        WHERE barcode = k.barcode OFFSET 0
    ) p
"""
# The sequence is named by a constant (looked up once per connection): given as
# ``pg_get_serial_sequence(..)``, it is looked up again for every id, four times slower.
_PG_SERIAL_SEQUENCE = "SELECT pg_get_serial_sequence(%s, 'id')"
_PG_RESERVE_IDS = "SELECT nextval(%s::regclass) FROM generate_series(1, %s)"

# Lines per query while a batch is read ahead: small enough for the database to work on
# the first SKUs while the rest are still being parsed (and for the planner not to think
# the query is worth compiling).
_READ_AHEAD_LINES = 500


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


@dataclass(slots=True)
class _Product:
    key: int  # the database id, or a negative placeholder for a product not inserted yet
    barcode: str | None
    scope: str | None
    name: str | None
    brand: str | None
    size: str | None
    dirty: bool = False
    merged_into: int | None = None


_Amounts = tuple[float | None, float | None, float | None]  # price, was price, unit price


@dataclass(slots=True)
class _Price:
    """A batch's observations of one SKU at one store."""

    first: _Amounts
    first_seen: datetime
    last: _Amounts
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
    copied: bool = False  # written already (``_Writer.new_prices_copied``)


class _BatchState:
    """What a batch knows of the products: read from the database, then changed by its
    lines following the rules."""

    def __init__(self) -> None:
        self.products: dict[int, _Product] = {}
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
            self.products[product_id] = _Product(product_id, barcode, scope, name, brand, size)
            if barcode:
                self.barcode_owner[barcode] = product_id

    def resolve(self, key: int) -> _Product:
        product = self.products[key]
        while product.merged_into is not None:
            product = self.products[product.merged_into]
        return product

    def new_product(self, line: ProductLine, gtin: Gtin | None) -> _Product:
        key = self._next_placeholder
        self._next_placeholder -= 1
        product = _Product(key, None, None, line.name, line.brand, line.size)
        self.products[key] = product
        if gtin is not None:
            self._set_barcode(product, gtin)
        return product

    def _set_barcode(self, product: _Product, gtin: Gtin) -> None:
        product.barcode, product.scope, product.dirty = gtin.code, gtin.scope.value, True
        self.barcodes_set += 1
        self.barcode_owner[gtin.code] = product.key

    def conflict(
        self, product: _Product, line: ProductLine, gtin: Gtin, reason: str, source: str
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
    ) -> _Product:
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
        self, product: _Product, line: ProductLine, gtin: Gtin, source: str
    ) -> _Product:
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

    def _merge(self, merged: _Product, survivor: _Product, reason: str, source: str) -> None:
        merged.merged_into = survivor.key
        for attr in ("name", "brand", "size"):
            if getattr(survivor, attr) is None and getattr(merged, attr) is not None:
                setattr(survivor, attr, getattr(merged, attr))
                survivor.dirty = True
        if merged.key > 0:
            self.merges.append((merged.key, survivor.key, reason, source))


class _Observations:
    """The prices and stores of a batch's lines: per store and SKU the first and last
    observation and the changes between them. They do not depend on the database, so
    they are collected as the lines are read."""

    def __init__(self, default_seen: datetime) -> None:
        self.default_seen = default_seen
        self.stores: dict[tuple[str, str], dict[str, Any]] = {}  # rows for the stores table
        self.prices: dict[tuple[str, str], dict[tuple[str, str], _Price]] = {}  # store → SKU →
        self._store: tuple[str, str] | None = None  # the last line's, as lines come in runs
        self._store_prices: dict[tuple[str, str], _Price] = {}

    def add(self, sku: tuple[str, str], store_id: str, line: ProductLine) -> _Price | None:
        """Take the store and price facts of a line of ``sku`` at store ``store_id``;
        returns the SKU's price at the store if it is new to the batch."""
        store = self._store
        if store is None or store[1] != store_id or store[0] != line.company:
            store = self._store = (line.company, store_id)
            if store not in self.stores:
                self.stores[store] = {
                    "company": line.company,
                    "store_id": store_id,
                    "name": None,
                    "state": None,
                }
            self._store_prices = self.prices.setdefault(store, {})
        if line.store_name or line.state:
            row = self.stores[store]
            row["name"] = line.store_name or row["name"]
            row["state"] = line.state or row["state"]
        if line.price is None:
            return None
        amounts = (line.price, line.was_price, line.unit_price)
        seen = line.scraped_at or self.default_seen
        current = self._store_prices.get(sku)
        if current is None:
            price = self._store_prices[sku] = _Price(
                amounts, seen, amounts, seen, line.available, line.url
            )
            return price
        if amounts != current.last:
            if current.changes is None:
                current.changes = []
            current.changes.append((current.last[0], *amounts, seen))
        current.last, current.last_seen = amounts, seen
        current.available = line.available if line.available is not None else current.available
        current.url = line.url or current.url
        return None


class BatchReader:
    """Reads what a batch needs to know of the database, as its lines come in.

    :meth:`read` takes the lines in order, in as many parts as convenient, and collects
    their stores and prices. On PostgreSQL, inside a ``with`` block, it also sends the
    queries for each part's new SKUs and barcodes right away, in pipeline mode, so the
    database answers them while the next lines are parsed; the answers are taken when the
    block ends. Whatever was not read ahead is read by :meth:`finish`. A reader serves one
    :func:`apply_lines` call, for exactly the lines it read, in the transaction it read
    in; nothing else may use the connection inside the block.
    """

    def __init__(self, session: Session, default_seen: datetime | None = None) -> None:
        self.session = session
        self.state = _BatchState()
        self.observations = _Observations(default_seen or datetime.now(UTC))
        self.keys: list[tuple[str, str]] = []  # each line's (company, SKU), in order
        self._postgresql = session.get_bind().dialect.name == "postgresql"
        self._pipeline: contextlib.ExitStack | None = None
        # PostgreSQL: what to ask about next (SKUs per company and store, for their prices
        # there; store None for lines without a price) and what was asked already
        self._pending: dict[tuple[str, str | None], list[str]] = {}
        self._pending_barcodes: list[str] = []
        self._pending_lines = 0
        self._asked: dict[tuple[str, str | None], set[str]] = {}  # SKUs per company, store
        self._asked_skus: dict[str, set[str]] = {}  # SKUs per company, at any store
        self._asked_barcodes: set[str] = set()
        # company, store, cursor, whether it answers for the products too
        self._answers: list[tuple[str, str | None, Any, bool]] = []
        self._barcode_answers: list[Any] = []

    def __enter__(self) -> BatchReader:
        if self._postgresql and self._pipeline is None:
            self._pipeline = contextlib.ExitStack()
            self._pipeline.enter_context(self._driver_connection().pipeline())
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        pipeline, self._pipeline = self._pipeline, None
        if pipeline is None:
            return
        if kind is None:
            self._ask()
        pipeline.__exit__(kind, error, traceback)  # sends what is queued, waits for answers
        if kind is None:
            self._take_answers()

    def _driver_connection(self) -> Any:
        return self.session.connection().connection.driver_connection

    def read(self, lines: Sequence[tuple[int, ProductLine]]) -> None:
        """Take the next lines of the batch."""
        if self._pipeline is not None and len(lines) > _READ_AHEAD_LINES:
            for part in chunked(lines, _READ_AHEAD_LINES):  # keep the queries small
                self._read(part)
        else:
            self._read(lines)

    def _read(self, lines: Sequence[tuple[int, ProductLine]]) -> None:
        keys, add = self.keys, self.observations.add
        postgresql, pending, barcodes = self._postgresql, self._pending, self._pending_barcodes
        group: tuple[str, str | None] | None = None
        skus: list[str] = []
        for _, line in lines:
            key = (line.company, line.sku)
            keys.append(key)
            store_id = line.store_id
            if store_id is not None:
                add(key, store_id, line)
            if postgresql:
                # ask about the SKU with its price at the store (if the line has one)
                at = store_id if line.price is not None else None
                if group is None or group[1] != at or group[0] != line.company:
                    group = (line.company, at)
                    skus = pending.setdefault(group, [])
                skus.append(line.sku)
                if line.barcode is not None:
                    barcodes.append(line.barcode.code)
        self._pending_lines += len(lines)
        if self._pipeline is not None and self._pending_lines >= _READ_AHEAD_LINES:
            self._ask()

    def _ask(self) -> None:
        """Send the queries about the SKUs and barcodes not asked about yet (PostgreSQL)."""
        connection = self._driver_connection()
        for (company, store_id), skus in self._pending.items():
            if store_id is None:  # the product alone: any earlier question answered it
                asked = self._asked_skus.setdefault(company, set())
            else:
                asked = self._asked.setdefault((company, store_id), set())
            new = [sku for sku in dict.fromkeys(skus) if sku not in asked]
            if not new:
                continue
            # SKUs whose products an earlier query asked about need their prices here only
            products_asked = self._asked_skus.setdefault(company, set())
            known = [sku for sku in new if sku in products_asked]
            fresh = [sku for sku in new if sku not in products_asked] if known else new
            asked.update(new)
            products_asked.update(fresh)
            if known:
                cursor = connection.cursor()
                values = {"company": company, "store": store_id, "skus": _text_array(known)}
                cursor.execute(_PG_PRICE_STATE, values)
                self._answers.append((company, store_id, cursor, False))
            if not fresh:
                continue
            cursor = connection.cursor()
            cursor.execute(
                _PG_SKU_STATE, {"company": company, "store": store_id, "skus": _text_array(fresh)}
            )
            self._answers.append((company, store_id, cursor, True))
        barcodes = [
            b for b in dict.fromkeys(self._pending_barcodes) if b not in self._asked_barcodes
        ]
        if barcodes:
            self._asked_barcodes.update(barcodes)
            cursor = connection.cursor()
            cursor.execute(_PG_BARCODE_STATE, (_text_array(barcodes),))
            self._barcode_answers.append(cursor)
        self._pending.clear()
        self._pending_barcodes.clear()
        self._pending_lines = 0

    def _take_answers(self) -> None:
        state, prices = self.state, self.observations.prices
        products, remember = state.products, state.remember
        sku_product, sku_pk = state.sku_product, state.sku_pk
        for company, store_id, cursor, full in self._answers:
            at_store = prices.get((company, store_id), {}) if store_id is not None else {}
            with cursor:
                rows = cursor.fetchall()
            if not full:  # stored prices of SKUs answered by an earlier query
                for row in rows:
                    observed = at_store.get((company, row[0]))
                    if observed is not None:
                        observed.stored = row[1:]
                continue
            for row in rows:
                sku, pk, product_id = row[0], row[1], row[2]
                if product_id not in products:
                    remember(product_id, row[3], row[4], row[5], row[6], row[7])
                key = (company, sku)
                sku_product[key] = product_id
                sku_pk[key] = pk
                if row[11] is not None:  # a price is stored at the store (it has a last_seen)
                    observed = at_store.get(key)
                    if observed is not None:
                        observed.stored = row[8:]
        for cursor in self._barcode_answers:
            with cursor:
                for row in cursor.fetchall():
                    remember(*row)
        self._answers.clear()
        self._barcode_answers.clear()

    def finish(self, lines: Sequence[tuple[int, ProductLine]]) -> None:
        """Read whatever the batch still needs to know (all of it, unless read ahead)."""
        if len(self.keys) != len(lines):
            raise ValueError("a BatchReader serves exactly the lines it read")
        if self._postgresql:
            if self._pending_lines or self._answers or self._barcode_answers:
                with self:
                    pass
        elif self._pending_lines:
            self._load(lines)
        self._pending_lines = 0

    def _load(self, lines: Sequence[tuple[int, ProductLine]]) -> None:
        """Read the SKUs' products and the barcodes' owners with SQLAlchemy (SQLite)."""
        state = self.state
        by_company: dict[str, set[str]] = {}
        for company, sku in self.keys:
            by_company.setdefault(company, set()).add(sku)
        conn = self.session.connection()
        for company, skus in by_company.items():
            for part in chunked(sorted(skus), SQLITE_CHUNK):
                rows = conn.execute(
                    select(CompanySku.sku, CompanySku.id, *_PRODUCT_STATE_COLUMNS)
                    .join(Product, Product.id == CompanySku.product_id)
                    .where(CompanySku.company == company, CompanySku.sku.in_(part))
                )
                for sku, pk, product_id, barcode, scope, name, brand, size in rows:
                    state.remember(product_id, barcode, scope, name, brand, size)
                    state.sku_product[(company, sku)] = product_id
                    state.sku_pk[(company, sku)] = pk
        barcodes = {line.barcode.code for _, line in lines if line.barcode is not None}
        wanted = sorted(b for b in barcodes if b not in state.barcode_owner)
        for part in chunked(wanted, SQLITE_CHUNK):
            for row in conn.execute(
                select(*_PRODUCT_STATE_COLUMNS).where(Product.barcode.in_(part))
            ):
                state.remember(*row)


_PRODUCT_STATE_COLUMNS = (
    Product.id,
    Product.barcode,
    Product.barcode_scope,
    Product.name,
    Product.brand,
    Product.size,
)


_NULL = "\\N"
# What COPY's text format escapes in a value (a backslash, and the row and column breaks).
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_str(value: str | None) -> str:
    if value is None:
        return _NULL
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
    return _NULL


# COPY's text form of a value, by its type (``repr`` of a float reads back as the same
# number; times keep their offset, as timestamptz reads them).
_COPY_FORMS: dict[type, Callable[[Any], str]] = {
    str: _copy_str,
    int: repr,
    float: repr,
    bool: _copy_bool,
    type(None): _copy_null,
    datetime: datetime.isoformat,
}


def _copy_row(values: Iterable[Any]) -> str:
    """One row in COPY's text format."""
    forms = _COPY_FORMS
    try:
        return "\t".join([forms[value.__class__](value) for value in values]) + "\n"
    except KeyError as exc:
        raise TypeError(f"no COPY text form for {exc.args[0].__name__}") from None


def _amounts_text(amounts: _Amounts) -> str:
    # repr reads back as the same float, and numeric(12, 3) holds the rounded value exactly
    return "\t".join(_NULL if a is None else repr(a) for a in amounts)


def _text_array(values: Sequence[str]) -> str:
    """A PostgreSQL array literal of strings (a parameter value, not SQL text): much
    cheaper to make than the driver's per-element array dumping. Every element is quoted,
    so only quotes and backslashes need escaping (SKUs and barcodes hardly ever hold any)."""
    if not values:
        return "{}"
    joined = '","'.join(values)
    if "\\" in joined or joined.count('"') != 2 * (len(values) - 1):  # some need escaping
        joined = '","'.join(v.replace("\\", "\\\\").replace('"', '\\"') for v in values)
    return '{"' + joined + '"}'


def _prices_text(store_pk: int, keyed: Sequence[tuple[int, _Price]]) -> Iterator[str]:
    """Rows of ``_PRICE_COLUMNS`` in COPY's text format, in parts of a few thousand rows,
    made by string formatting: several times faster than the driver's per-value dumping."""
    amounts = _TextForms(_amounts_text)
    times = _TextForms(datetime.isoformat)  # with the offset, as timestamptz reads it
    flags = {None: _NULL, True: "t", False: "f"}
    for part in chunked(keyed, 2000):
        yield "".join(
            f"{store_pk}\t{sku_pk}\t{amounts[p.last]}\t{flags[p.available]}\t"
            f"{_copy_str(p.url)}\t{times[p.last_seen]}\n"
            for sku_pk, p in part
        )


_PRODUCT_COLUMNS = [
    "id",
    "name",
    "brand",
    "size",
    "barcode",
    "barcode_scope",
    "created_at",
    "updated_at",
]
_SKU_COLUMNS = ["id", "company", "sku", "product_id", "created_at"]


def _products_text(
    ids: Sequence[int], products: Sequence[_Product], now: datetime
) -> Iterator[str]:
    """New products as rows of ``_PRODUCT_COLUMNS`` in COPY's text format (barcodes and
    their scopes are digits and names: nothing to escape)."""
    stamp = now.isoformat()
    for part in chunked(list(zip(ids, products, strict=True)), 2000):
        yield "".join(
            f"{pk}\t{_copy_str(p.name)}\t{_copy_str(p.brand)}\t{_copy_str(p.size)}\t"
            f"{p.barcode or _NULL}\t{p.scope or _NULL}\t{stamp}\t{stamp}\n"
            for pk, p in part
        )


def _skus_text(
    ids: Sequence[int], keys: Sequence[tuple[str, str]], products: Sequence[int], now: datetime
) -> str:
    """New SKUs as rows of ``_SKU_COLUMNS`` in COPY's text format."""
    stamp = now.isoformat()
    return "".join(
        f"{pk}\t{_copy_str(company)}\t{_copy_str(sku)}\t{product}\t{stamp}\n"
        for pk, (company, sku), product in zip(ids, keys, products, strict=True)
    )


class _Writer:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.dialect = session.get_bind().dialect

    def store_ids(
        self, wanted: dict[tuple[str, str], dict[str, Any]]
    ) -> dict[tuple[str, str], int]:
        if not wanted:
            return {}
        stmt = upsert(
            self.dialect,
            Store.__table__,  # type: ignore[arg-type]
            conflict=("company", "store_id"),
            keep_existing=("name", "state"),
        )
        self.session.execute(stmt, list(wanted.values()))
        result: dict[tuple[str, str], int] = {}
        for company in {c for c, _ in wanted}:
            ids = [s for c, s in wanted if c == company]
            for store_company, store_id, pk in self.session.execute(
                select(Store.company, Store.store_id, Store.id).where(
                    Store.company == company, sql_in(self.session, Store.store_id, ids)
                )
            ):
                result[(store_company, store_id)] = pk
        return result

    def write_products(self, state: _BatchState, stats: BatchStats) -> dict[int, int]:
        """Insert new products and update changed ones; returns placeholder → real id."""
        real: dict[int, int] = {}
        new = [p for p in state.products.values() if p.key < 0 and p.merged_into is None]
        if new:
            now = utcnow()
            if self.dialect.name == "postgresql":
                ids = self.reserve_ids(Product.__table__, len(new))  # type: ignore[arg-type]
                self._copy_text(Product.__table__, _PRODUCT_COLUMNS, _products_text(ids, new, now))  # type: ignore[arg-type]
            else:
                rows = [
                    {
                        "name": p.name,
                        "brand": p.brand,
                        "size": p.size,
                        "barcode": p.barcode,
                        "barcode_scope": p.scope,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for p in new
                ]
                ids = self.insert_with_ids(Product.__table__, rows)  # type: ignore[arg-type]
            real.update(zip((p.key for p in new), ids, strict=True))
            stats.products_created += len(new)
        changed = [
            p for p in state.products.values() if p.key > 0 and p.dirty and p.merged_into is None
        ]
        if changed:
            self._update_products(changed, utcnow())
        for product in state.products.values():
            if product.key < 0 and product.merged_into is not None:
                real[product.key] = real.get(
                    state.resolve(product.key).key, state.resolve(product.key).key
                )
        return real

    def _update_products(self, changed: list[_Product], now: datetime) -> None:
        stmt = (
            update(Product)
            .where(Product.id == bindparam("pid"))
            .values(
                name=bindparam("n"),
                brand=bindparam("b"),
                size=bindparam("s"),
                barcode=bindparam("g"),
                barcode_scope=bindparam("sc"),
                updated_at=now,
            )
        )
        self.session.connection().execute(
            stmt,
            [
                {
                    "pid": p.key,
                    "n": p.name,
                    "b": p.brand,
                    "s": p.size,
                    "g": p.barcode,
                    "sc": p.scope,
                }
                for p in changed
            ],
        )

    def write_merges(self, state: _BatchState, real: dict[int, int], stats: BatchStats) -> None:
        for merged_id, survivor_key, reason, source in state.merges:
            survivor_key = state.resolve(survivor_key).key
            survivor_id = real.get(survivor_key, survivor_key)
            merge_products(self.session, merged_id, survivor_id, reason=reason, source=source)
            stats.merges += 1

    def write_skus(self, state: _BatchState, real: dict[int, int], stats: BatchStats) -> None:
        if not state.new_skus:
            return
        if self.dialect.name == "postgresql":
            keys = state.new_skus
            products = [
                real.get(key, key)
                for key in (state.resolve(state.sku_product[sku]).key for sku in keys)
            ]
            ids = self.reserve_ids(CompanySku.__table__, len(keys))  # type: ignore[arg-type]
            text = _skus_text(ids, keys, products, utcnow())
            self._copy_text(CompanySku.__table__, _SKU_COLUMNS, [text])  # type: ignore[arg-type]
            state.sku_pk.update(zip(keys, ids, strict=True))
            stats.skus_created += len(keys)
            return
        rows: list[dict[str, Any]] = []
        for company, sku in state.new_skus:
            product = state.resolve(state.sku_product[(company, sku)])
            rows.append(
                {"company": company, "sku": sku, "product_id": real.get(product.key, product.key)}
            )
        now = utcnow()
        for row in rows:
            row["created_at"] = now
        ids = self.insert_with_ids(CompanySku.__table__, rows)  # type: ignore[arg-type]
        for row, pk in zip(rows, ids, strict=True):
            state.sku_pk[(row["company"], row["sku"])] = pk
        stats.skus_created += len(rows)

    def write_conflicts(self, state: _BatchState, real: dict[int, int], stats: BatchStats) -> None:
        if not state.conflicts:
            return
        rows = []
        for conflict in state.conflicts:
            row = dict(conflict)
            product = state.resolve(row.pop("product_key"))
            row["product_id"] = real.get(product.key, product.key)
            rows.append(row)
        stmt = upsert(
            self.dialect,
            BarcodeConflict.__table__,  # type: ignore[arg-type]
            conflict=("company", "sku", "existing_barcode", "offered_barcode"),
        )
        self.session.execute(stmt, rows)
        stats.conflicts += len(rows)

    @contextlib.contextmanager
    def new_prices_copied(
        self,
        prices: dict[tuple[str, str], dict[tuple[str, str], _Price]],
        stores: dict[tuple[str, str], int],
        skus: dict[tuple[str, str], int],
    ) -> Iterator[None]:
        """On PostgreSQL, COPY the batch's first prices of SKUs known before it, while the
        block runs: the database stores them meanwhile (the block being the product rules,
        in Python, which the prices do not depend on). :meth:`write_prices` skips them."""
        parts = []
        if self.dialect.name == "postgresql":
            known = skus.get
            for store, by_sku in prices.items():
                new = []
                for sku, p in by_sku.items():
                    if p.stored is None and (pk := known(sku)) is not None:
                        p.copied = True
                        new.append((pk, p))
                if new:
                    parts.append(_prices_text(stores[store], new))
        if not parts:
            yield
            return
        cursor = self.session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
        statement = f"COPY {StorePrice.__tablename__} ({', '.join(_PRICE_COLUMNS)}) FROM STDIN"
        with cursor, cursor.copy(statement) as copy:
            for part in itertools.chain.from_iterable(parts):
                copy.write(part.encode())
            yield

    def write_prices(
        self,
        prices: dict[tuple[str, str], dict[tuple[str, str], _Price]],
        stores: dict[tuple[str, str], int],
        skus: dict[tuple[str, str], int],
        stats: BatchStats,
    ) -> None:
        """Upsert current prices (per store, then SKU) and record changes."""
        history: list[Any] = []  # changes from the stored prices first, then within the batch
        changes: list[Any] = []
        for store, by_sku in prices.items():
            if not by_sku:
                continue
            store_pk = stores[store]
            if self.dialect.name == "postgresql":  # prices COPYed already need no more work
                keyed = [(skus[s], p) for s, p in by_sku.items() if not p.copied or p.changes]
                history += self._write_prices_postgresql(store_pk, keyed)
            else:
                keyed = [(skus[s], p) for s, p in by_sku.items()]
                self._write_prices_staged(store_pk, keyed, stats)
            changes += [
                (store_pk, sku_pk, *change) for sku_pk, p in keyed for change in p.changes or ()
            ]
            stats.prices_written += len(by_sku)
        history += changes
        if history:
            self._copy(PriceHistory.__table__, _HISTORY_COLUMNS, history)  # type: ignore[arg-type]
            stats.price_changes += len(history)

    def _write_prices_postgresql(self, store_pk: int, keyed: list[tuple[int, _Price]]) -> list[Any]:
        """COPY the store's new prices straight into store_prices and upsert the known
        ones (their stored price came with the SKUs, see :class:`BatchReader`); returns
        the history rows of first observations that differ from the stored price.

        The common case, a SKU priced at a store for the first time, then costs a plain
        COPY: no staging, no speculative insertion. Should another loader insert the same
        price meanwhile, the COPY fails on the unique key and the batch is retried (and
        then reads it).
        """
        new: list[tuple[int, _Price]] = []
        known: list[tuple[int, _Price]] = []
        history: list[Any] = []
        for sku_pk, p in keyed:
            old = p.stored
            if old is None:
                if not p.copied:
                    new.append((sku_pk, p))
                continue
            if p.first != (old[0], old[1], old[2]):
                history.append((store_pk, sku_pk, old[0], *p.first, p.first_seen))
            # Older observations never overwrite newer prices, and a row the upsert would
            # leave as it is (the same file again) is not written: an update writes a new
            # row version and its index entries however little it changes.
            if p.last_seen > old[3] or (
                p.last_seen == old[3]
                and (
                    p.last != (old[0], old[1], old[2])
                    or (p.available is not None and p.available != old[4])
                    or (p.url is not None and p.url != old[5])
                )
            ):
                known.append((sku_pk, p))
        if new:
            self._copy_text(StorePrice.__table__, _PRICE_COLUMNS, _prices_text(store_pk, new))  # type: ignore[arg-type]
        if known:
            conn = self.session.connection()
            if not self._stage_exists(conn):
                stage_prices.create(conn)
            # Empty already (emptied at commit) unless this transaction staged before.
            conn.execute(delete(stage_prices))
            self._copy_text(stage_prices, _PRICE_COLUMNS, _prices_text(store_pk, known))
            conn.execute(_PG_UPSERT)
        return history

    def _write_prices_staged(
        self, store_pk: int, keyed: list[tuple[int, _Price]], stats: BatchStats
    ) -> None:
        """Stage the store's prices, record the changed first observations and upsert."""
        conn = self.session.connection()
        if not self._stage_exists(conn):
            stage_prices.create(conn)
        conn.execute(delete(stage_prices))
        rows = [
            (store_pk, sku_pk, *p.last, p.available, p.url, p.last_seen, *p.first, p.first_seen)
            for sku_pk, p in keyed
        ]
        self._copy(stage_prices, _STAGE_COLUMNS, rows)
        result = conn.execute(_SQLITE_HISTORY, execution_options={"preserve_rowcount": True})
        stats.price_changes += max(result.rowcount or 0, 0)
        conn.execute(_SQLITE_UPSERT)

    def _stage_exists(self, conn: Any) -> bool:
        if self.dialect.name == "postgresql":
            return bool(conn.exec_driver_sql("SELECT to_regclass('pg_temp.stage_prices')").scalar())
        return bool(
            conn.exec_driver_sql(
                "SELECT 1 FROM sqlite_temp_master WHERE type='table' AND name='stage_prices'"
            ).first()
        )

    def _copy(self, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Bulk-load rows: COPY on PostgreSQL, one executemany on SQLite."""
        if self.dialect.name == "postgresql":
            self._copy_text(table, columns, ["".join(map(_copy_row, rows))])
        else:
            conn = self.session.connection()
            conn.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in rows])

    def _copy_text(self, table: Table, columns: Sequence[str], parts: Iterable[str]) -> None:
        """COPY rows already in PostgreSQL's text format (see :func:`_copy_row`). Each part
        is sent as soon as it is made, so the database stores it while the next is made."""
        conn = self.session.connection()
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        with cursor, cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
            for part in parts:
                copy.write(part.encode())

    def reserve_ids(self, table: Table, count: int) -> list[int]:
        """``count`` new ids from the table's sequence (PostgreSQL), for rows to COPY."""
        conn = self.session.connection()
        sequences = conn.info.setdefault("serial_sequences", {})
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        with cursor:
            if table.name not in sequences:
                (sequences[table.name],) = cursor.execute(
                    _PG_SERIAL_SEQUENCE, (table.name,)
                ).fetchone()
            return [pk for (pk,) in cursor.execute(_PG_RESERVE_IDS, (sequences[table.name], count))]

    def insert_with_ids(self, table: Table, rows: list[dict[str, Any]]) -> list[int]:
        """Insert rows and return their new ids, in order, without per-row round trips.

        PostgreSQL: ids are reserved from the table's sequence, then the rows are COPYed.
        SQLite: the first insert takes the database's single write lock and returns its
        id; rowids after it are free until the transaction ends, so the rest follow it.
        """
        conn = self.session.connection()
        if self.dialect.name == "postgresql":
            ids = self.reserve_ids(table, len(rows))
        else:
            first = conn.execute(insert(table).returning(table.c.id), rows[0]).scalar_one()
            ids = list(range(first, first + len(rows)))
        for row, pk in zip(rows, ids, strict=True):
            row["id"] = pk
        todo = rows if self.dialect.name == "postgresql" else rows[1:]
        if todo:
            columns = list(todo[0])
            self._copy(table, columns, [[row[c] for c in columns] for row in todo])
        return ids


def merge_products(
    session: Session, merged_id: int, survivor_id: int, *, reason: str, source: str | None
) -> None:
    """Fold product ``merged_id`` into ``survivor_id``: SKUs (with their prices and history)
    and conflicts move over, the merged row is deleted and recorded with a full snapshot."""
    merged = session.execute(
        select(
            Product.name, Product.brand, Product.size, Product.barcode, Product.created_at
        ).where(Product.id == merged_id)
    ).one()
    skus = session.execute(
        select(CompanySku.company, CompanySku.sku).where(CompanySku.product_id == merged_id)
    ).all()
    snapshot = {
        "name": merged.name,
        "brand": merged.brand,
        "size": merged.size,
        "barcode": merged.barcode,
        "created_at": merged.created_at.isoformat() if merged.created_at else None,
        "skus": [{"company": c, "sku": s} for c, s in skus],
    }
    session.execute(
        update(CompanySku).where(CompanySku.product_id == merged_id).values(product_id=survivor_id)
    )
    session.execute(
        update(BarcodeConflict)
        .where(BarcodeConflict.product_id == merged_id)
        .values(product_id=survivor_id)
    )
    session.execute(delete(ProductGroupMember).where(ProductGroupMember.product_id == merged_id))
    session.execute(
        update(ProductMerge)
        .where(ProductMerge.survivor_id == merged_id)
        .values(survivor_id=survivor_id)
    )
    session.execute(delete(Product).where(Product.id == merged_id))
    session.execute(
        insert(ProductMerge).values(
            survivor_id=survivor_id,
            merged_id=merged_id,
            reason=reason,
            snapshot=snapshot,
            source=source,
            merged_at=utcnow(),
        )
    )


def apply_lines(
    session: Session,
    lines: Sequence[tuple[int, ProductLine]],
    *,
    source: str,
    default_seen: datetime | None = None,
    reader: BatchReader | None = None,
) -> BatchStats:
    """Apply numbered product lines, in order, inside the caller's transaction.

    ``source`` (e.g. the file name) is recorded with each merge and conflict, with the
    line number; ``default_seen`` is the observation time of lines without ``scraped_at``.
    ``reader``, if given, has read exactly these lines already (and ``default_seen`` is
    its own).
    """
    stats = BatchStats(lines=len(lines))
    if not lines:
        return stats
    if reader is None:
        reader = BatchReader(session, default_seen)
        reader.read(lines)
    reader.finish(lines)
    state = reader.state
    writer = _Writer(session)
    prices = reader.observations.prices
    stores = writer.store_ids(reader.observations.stores)
    with writer.new_prices_copied(prices, stores, state.sku_pk):
        observe = state.observe
        for key, (number, line) in zip(reader.keys, lines, strict=True):
            observe(key, line, source, number)
    stats.barcodes_set = state.barcodes_set
    real = writer.write_products(state, stats)
    writer.write_merges(state, real, stats)
    writer.write_skus(state, real, stats)
    writer.write_conflicts(state, real, stats)
    writer.write_prices(prices, stores, state.sku_pk, stats)
    return stats
