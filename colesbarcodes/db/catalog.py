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
in a few set-based queries and writes in bulk (prices go through a staging table, filled
with COPY on PostgreSQL), so its cost does not grow with the size of the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    MetaData,
    String,
    Table,
    any_,
    bindparam,
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY

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
    utcnow,
)
from colesbarcodes.db.upsert import upsert

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from sqlalchemy.orm import Session

    from colesbarcodes.gtin import Gtin
    from colesbarcodes.lines import ProductLine

__all__ = ["BatchStats", "apply_lines", "chunked", "merge_products"]

_CHUNK = 5000

# The staging table for a batch's prices: temporary, so it lives only in the connection.
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
)
_STAGE_COLUMNS = [c.name for c in stage_prices.columns]
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
# never overwrite newer prices (``last_seen``). PostgreSQL does the join once for both.
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
    ON CONFLICT (sku_pk, store_pk) DO UPDATE SET
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
_PG_PRICES = text(
    "WITH upserted AS ("
    + _UPSERT.format(source="stage_prices")
    + ")"
    + _INSERT_HISTORY
    + _CHANGED.format(ne="IS DISTINCT FROM")
)
_SQLITE_HISTORY = text(_INSERT_HISTORY + _CHANGED.format(ne="IS NOT"))
_SQLITE_UPSERT = text(_UPSERT.format(source="stage_prices"))


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


@dataclass
class _Product:
    key: int  # the database id, or a negative placeholder for a product not inserted yet
    barcode: str | None
    scope: str | None
    name: str | None
    brand: str | None
    size: str | None
    dirty: bool = False
    merged_into: int | None = None


@dataclass
class _Price:
    store: tuple[str, str]
    sku: tuple[str, str]
    first: tuple[float | None, float | None, float | None, datetime]
    last: tuple[float | None, float | None, float | None, datetime]
    available: bool | None
    url: str | None
    # (previous price, price, was price, unit price, seen) for changes within the batch
    changes: list[tuple[float | None, float | None, float | None, float | None, datetime]] = field(
        default_factory=list
    )


def chunked(values: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _in(session: Session, column: Any, values: Sequence[Any]) -> Any:
    """``column IN values`` that stays one parameter on PostgreSQL (``= ANY(array)``)."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    return column.in_(values)


class _BatchState:
    """What a batch needs to know of the database, read in a few set-based queries."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.products: dict[int, _Product] = {}
        self.sku_product: dict[tuple[str, str], int] = {}
        self.sku_pk: dict[tuple[str, str], int] = {}
        self.barcode_owner: dict[str, int] = {}
        self.new_skus: list[tuple[str, str]] = []
        self.merges: list[tuple[int, int, str, str]] = []  # merged, survivor, reason, source
        self.conflicts: list[dict[str, Any]] = []
        self._next_placeholder = -1
        self.barcodes_set = 0

    def load(self, skus: set[tuple[str, str]], barcodes: set[str]) -> None:
        by_company: dict[str, list[str]] = {}
        for company, sku in skus:
            by_company.setdefault(company, []).append(sku)
        columns = (
            CompanySku.company,
            CompanySku.sku,
            CompanySku.id,
            Product.id,
            Product.barcode,
            Product.barcode_scope,
            Product.name,
            Product.brand,
            Product.size,
        )
        for company, company_skus in by_company.items():
            for part in chunked(sorted(company_skus)):
                rows = self.session.connection().execute(
                    select(*columns)
                    .join(Product, Product.id == CompanySku.product_id)
                    .where(CompanySku.company == company, _in(self.session, CompanySku.sku, part))
                )
                for row in rows:
                    self._remember(row[3:])
                    self.sku_product[(row[0], row[1])] = row[3]
                    self.sku_pk[(row[0], row[1])] = row[2]
        wanted = sorted(b for b in barcodes if b not in self.barcode_owner)
        product_columns = columns[3:]
        for part in chunked(wanted):
            for row in self.session.connection().execute(
                select(*product_columns).where(_in(self.session, Product.barcode, part))
            ):
                self._remember(row)

    def _remember(self, row: Sequence[Any]) -> None:
        product_id, barcode, scope, name, brand, size = row
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

    def observe(self, line: ProductLine, source: str) -> None:
        """Apply one line's product facts to the in-memory state, following the rules."""
        key = (line.company, line.sku)
        gtin = line.barcode
        known = self.sku_product.get(key)
        if known is None:
            owner = self.barcode_owner.get(gtin.code) if gtin else None
            if gtin is not None and owner is not None and gtin.is_global:
                product = self.resolve(owner)
            elif gtin is not None and owner is not None:
                product = self.new_product(line, None)
                self.conflict(
                    product, line, gtin, "non-global code held by another product", source
                )
            else:
                product = self.new_product(line, gtin)
            self.sku_product[key] = product.key
            self.new_skus.append(key)
        else:
            product = self.resolve(known)
            if gtin is not None and product.barcode != gtin.code:
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
                    self.conflict(
                        product, line, gtin, "non-global code held by another product", source
                    )
        for attr in ("name", "brand", "size"):
            value = getattr(line, attr)
            if value is not None and getattr(product, attr) != value:
                setattr(product, attr, value)
                product.dirty = True

    def _merge(self, merged: _Product, survivor: _Product, reason: str, source: str) -> None:
        merged.merged_into = survivor.key
        for attr in ("name", "brand", "size"):
            if getattr(survivor, attr) is None and getattr(merged, attr) is not None:
                setattr(survivor, attr, getattr(merged, attr))
                survivor.dirty = True
        if merged.key > 0:
            self.merges.append((merged.key, survivor.key, reason, source))


def _price_observations(
    lines: Sequence[tuple[int, ProductLine]], default_seen: datetime
) -> list[_Price]:
    prices: dict[tuple[tuple[str, str], tuple[str, str]], _Price] = {}
    for _, line in lines:
        if line.store_id is None or line.price is None:
            continue
        seen = line.scraped_at or default_seen
        obs = (line.price, line.was_price, line.unit_price, seen)
        key = ((line.company, line.store_id), (line.company, line.sku))
        current = prices.get(key)
        if current is None:
            prices[key] = _Price(key[0], key[1], obs, obs, line.available, line.url)
            continue
        if obs[:3] != current.last[:3]:
            current.changes.append((current.last[0], *obs))
        current.last = obs
        current.available = line.available if line.available is not None else current.available
        current.url = line.url or current.url
    return list(prices.values())


class _Writer:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.dialect = session.get_bind().dialect

    def store_ids(self, lines: Sequence[tuple[int, ProductLine]]) -> dict[tuple[str, str], int]:
        wanted: dict[tuple[str, str], dict[str, Any]] = {}
        for _, line in lines:
            if line.store_id is not None:
                row = wanted.setdefault(
                    (line.company, line.store_id),
                    {
                        "company": line.company,
                        "store_id": line.store_id,
                        "name": None,
                        "state": None,
                    },
                )
                row["name"] = line.store_name or row["name"]
                row["state"] = line.state or row["state"]
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
                    Store.company == company, _in(self.session, Store.store_id, ids)
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

    def write_prices(
        self,
        prices: list[_Price],
        stores: dict[tuple[str, str], int],
        skus: dict[tuple[str, str], int],
        stats: BatchStats,
    ) -> None:
        """Upsert current prices and record changes, set-based through the staging table."""
        if not prices:
            return
        conn = self.session.connection()
        if not self._stage_exists(conn):
            stage_prices.create(conn)
        conn.execute(delete(stage_prices))
        rows = [
            (stores[p.store], skus[p.sku], *p.last[:3], p.available, p.url, p.last[3], *p.first)
            for p in prices
        ]
        self._copy(stage_prices, _STAGE_COLUMNS, rows)
        if self.dialect.name == "postgresql":
            result = conn.execute(_PG_PRICES, execution_options={"preserve_rowcount": True})
            stats.price_changes += max(result.rowcount or 0, 0)
        else:
            result = conn.execute(_SQLITE_HISTORY, execution_options={"preserve_rowcount": True})
            stats.price_changes += max(result.rowcount or 0, 0)
            conn.execute(_SQLITE_UPSERT)
        changes = [(stores[p.store], skus[p.sku], *change) for p in prices for change in p.changes]
        if changes:
            self._copy(PriceHistory.__table__, _HISTORY_COLUMNS, changes)  # type: ignore[arg-type]
            stats.price_changes += len(changes)
        stats.prices_written += len(rows)

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
        conn = self.session.connection()
        if self.dialect.name == "postgresql":
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            with cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cursor.close()
        else:
            conn.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in rows])

    def insert_with_ids(self, table: Table, rows: list[dict[str, Any]]) -> list[int]:
        """Insert rows and return their new ids, in order, without per-row round trips.

        PostgreSQL: ids are reserved from the table's sequence, then the rows are COPYed.
        SQLite: the first insert takes the database's single write lock and returns its
        id; rowids after it are free until the transaction ends, so the rest follow it.
        """
        conn = self.session.connection()
        if self.dialect.name == "postgresql":
            ids = list(
                conn.execute(
                    select(func.nextval(func.pg_get_serial_sequence(table.name, "id"))).select_from(
                        func.generate_series(1, len(rows))
                    )
                ).scalars()
            )
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
) -> BatchStats:
    """Apply numbered product lines, in order, inside the caller's transaction.

    ``source`` (e.g. the file name) is recorded with each merge and conflict, with the
    line number; ``default_seen`` is the observation time of lines without ``scraped_at``.
    """
    stats = BatchStats(lines=len(lines))
    if not lines:
        return stats
    default_seen = default_seen or datetime.now(UTC)
    state = _BatchState(session)
    state.load(
        {(line.company, line.sku) for _, line in lines},
        {line.barcode.code for _, line in lines if line.barcode is not None},
    )
    for number, line in lines:
        state.observe(line, f"{source}:{number}")
    stats.barcodes_set = state.barcodes_set
    writer = _Writer(session)
    stores = writer.store_ids(lines)
    real = writer.write_products(state, stats)
    writer.write_merges(state, real, stats)
    writer.write_skus(state, real, stats)
    writer.write_conflicts(state, real, stats)
    prices = _price_observations(lines, default_seen)
    writer.write_prices(prices, stores, state.sku_pk, stats)
    return stats
