"""Writing a batch's outcome: new and changed products, merges, SKUs, conflicts, prices
and their history, in bulk (COPY on PostgreSQL, with staging tables for known prices and
changed products; a staging table for prices on SQLite)."""

from __future__ import annotations

import contextlib
import itertools
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

from colesbarcodes.db.copy_text import (
    PRODUCT_COPY_COLUMNS,
    PRODUCT_STAGE_COLUMNS,
    SKU_COPY_COLUMNS,
    changed_products_text,
    copy_row,
    prices_text,
    products_text,
    skus_text,
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
from colesbarcodes.db.product_stage import CREATE_PRODUCT_STAGE, UPDATE_PRODUCTS, product_stage
from colesbarcodes.db.side_work import OverlappingCopyWriter, execute_with_side_work
from colesbarcodes.db.sqlutil import sql_in
from colesbarcodes.db.upsert import upsert

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence
    from datetime import datetime

    from sqlalchemy.orm import Session

    from colesbarcodes.db.batch_state import BatchState, BatchStats, PriceState, ProductState


__all__ = [
    "HISTORY_COLUMNS",
    "PRICE_COLUMNS",
    "STAGE_COLUMNS",
    "BatchWriter",
    "merge_products",
    "stage_prices",
]

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


STAGE_COLUMNS = [c.name for c in stage_prices.columns]


PRICE_COLUMNS = STAGE_COLUMNS[:8]  # keys, last prices, available, url, last_seen


HISTORY_COLUMNS = [
    "store_pk",
    "sku_pk",
    "previous_price",
    "price",
    "was_price",
    "unit_price",
    "observed_at",
]


# A change is a first observation in the batch that differs from the stored price; later
# observations of the same batch are compared in Python (``PriceState.changes``). Older files
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


# The sequence is named by a constant (looked up once per connection): given as
# ``pg_get_serial_sequence(..)``, it is looked up again for every id, four times slower.
_PG_SERIAL_SEQUENCE = "SELECT pg_get_serial_sequence(%s, 'id')"


# as one array: a row per id costs the loader ~5 times the CPU (30,000 ids: 14 against
# 2.5 ms, measured); the ids are distinct, not always consecutive (other sessions' nextval)
_PG_RESERVE_IDS = "SELECT array_agg(nextval(%s::regclass)) FROM generate_series(1, %s)"


class BatchWriter:
    """Writes a batch. ``side_work``, if given, is run while the database stores COPYed
    rows and upserts prices (see :mod:`colesbarcodes.db.side_work`)."""

    # PostgreSQL writes a batch's changed products in one set-based update; False writes
    # them row by row as on SQLite (the path before it, kept to compare the two).
    products_set_based = True

    def __init__(self, session: Session, side_work: Callable[[], bool] | None = None) -> None:
        self.session = session
        self.dialect = session.get_bind().dialect
        self.side_work = side_work

    def _copy_from(self, cursor: Any, statement: str) -> Any:
        """``cursor.copy(statement)``, with the side work while the database works."""
        if self.side_work is None:
            return cursor.copy(statement)
        return cursor.copy(statement, writer=OverlappingCopyWriter(cursor, self.side_work))

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

    def write_products(self, state: BatchState, stats: BatchStats) -> dict[int, int]:
        """Insert new products and update changed ones; returns placeholder → real id."""
        real: dict[int, int] = {}
        new = [p for p in state.products.values() if p.key < 0 and p.merged_into is None]
        if new:
            now = utcnow()
            if self.dialect.name == "postgresql":
                ids = self.reserve_ids(Product.__table__, len(new))  # type: ignore[arg-type]
                self._copy_text(
                    Product.__table__,  # type: ignore[arg-type]
                    PRODUCT_COPY_COLUMNS,
                    products_text(ids, new, now),
                )
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

    def _update_products(self, changed: list[ProductState], now: datetime) -> None:
        """Write the batch's changed products, each once, with its state after the batch's
        last line (a later line's value replaced an earlier one; a missing one erased
        nothing); a row that comes out as stored is not rewritten."""
        if self.dialect.name == "postgresql" and self.products_set_based:
            self._update_products_staged(changed, now)
            return
        stmt = (
            update(Product)
            .where(
                Product.id == bindparam("pid"),
                Product.name.is_distinct_from(bindparam("n"))
                | Product.brand.is_distinct_from(bindparam("b"))
                | Product.size.is_distinct_from(bindparam("s"))
                | Product.barcode.is_distinct_from(bindparam("g"))
                | Product.barcode_scope.is_distinct_from(bindparam("sc")),
            )
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

    def _update_products_staged(self, changed: list[ProductState], now: datetime) -> None:
        """COPY the changed products into ``stage_products`` and update from it in one
        statement, the next batch parsed meanwhile (PostgreSQL)."""
        conn = self.session.connection()
        driver = conn.connection.driver_connection
        with driver.cursor() as cursor:  # type: ignore[union-attr]
            cursor.execute(CREATE_PRODUCT_STAGE)
        self._copy_text(product_stage, PRODUCT_STAGE_COLUMNS, changed_products_text(changed, now))
        if self.side_work is None:
            conn.exec_driver_sql(UPDATE_PRODUCTS)
        else:
            execute_with_side_work(driver, UPDATE_PRODUCTS, self.side_work)  # type: ignore[arg-type]

    def write_merges(self, state: BatchState, real: dict[int, int], stats: BatchStats) -> None:
        for merged_id, survivor_key, reason, source in state.merges:
            survivor_key = state.resolve(survivor_key).key
            survivor_id = real.get(survivor_key, survivor_key)
            merge_products(self.session, merged_id, survivor_id, reason=reason, source=source)
            stats.merges += 1

    def write_skus(self, state: BatchState, real: dict[int, int], stats: BatchStats) -> None:
        if not state.new_skus:
            return
        if self.dialect.name == "postgresql":
            keys = state.new_skus
            products = [
                real.get(key, key)
                for key in (state.resolve(state.sku_product[sku]).key for sku in keys)
            ]
            ids = self.reserve_ids(CompanySku.__table__, len(keys))  # type: ignore[arg-type]
            text = skus_text(ids, keys, products, utcnow())
            self._copy_text(CompanySku.__table__, SKU_COPY_COLUMNS, [text])  # type: ignore[arg-type]
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

    def write_conflicts(self, state: BatchState, real: dict[int, int], stats: BatchStats) -> None:
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
        prices: dict[tuple[str, str], dict[tuple[str, str], PriceState]],
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
                    parts.append(prices_text(stores[store], new))
        if not parts:
            yield
            return
        cursor = self.session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
        statement = f"COPY {StorePrice.__tablename__} ({', '.join(PRICE_COLUMNS)}) FROM STDIN"
        with cursor, self._copy_from(cursor, statement) as copy:
            for part in itertools.chain.from_iterable(parts):
                copy.write(part.encode())
            yield

    def write_prices(
        self,
        prices: dict[tuple[str, str], dict[tuple[str, str], PriceState]],
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
            self.copy_rows(PriceHistory.__table__, HISTORY_COLUMNS, history)  # type: ignore[arg-type]
            stats.price_changes += len(history)

    def _write_prices_postgresql(
        self, store_pk: int, keyed: list[tuple[int, PriceState]]
    ) -> list[Any]:
        """COPY the store's new prices straight into store_prices and upsert the known
        ones (their stored price came with the SKUs, see :class:`BatchReader`); returns
        the history rows of first observations that differ from the stored price.

        The common case, a SKU priced at a store for the first time, then costs a plain
        COPY: no staging, no speculative insertion. Should another loader insert the same
        price meanwhile, the COPY fails on the unique key and the batch is retried (and
        then reads it).
        """
        new: list[tuple[int, PriceState]] = []
        known: list[tuple[int, PriceState]] = []
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
            self._copy_text(StorePrice.__table__, PRICE_COLUMNS, prices_text(store_pk, new))  # type: ignore[arg-type]
        if known:
            conn = self.session.connection()
            if not self._stage_exists(conn):
                stage_prices.create(conn)
            # Empty already (emptied at commit) unless this transaction staged before.
            conn.execute(delete(stage_prices))
            self._copy_text(stage_prices, PRICE_COLUMNS, prices_text(store_pk, known))
            if self.side_work is None:
                conn.execute(_PG_UPSERT)
            else:
                driver = conn.connection.driver_connection
                execute_with_side_work(driver, _PG_UPSERT.text, self.side_work)  # type: ignore[arg-type]
        return history

    def _write_prices_staged(
        self, store_pk: int, keyed: list[tuple[int, PriceState]], stats: BatchStats
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
        self.copy_rows(stage_prices, STAGE_COLUMNS, rows)
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

    def copy_rows(
        self, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        """Bulk-load rows: COPY on PostgreSQL, one executemany on SQLite."""
        if self.dialect.name == "postgresql":
            self._copy_text(table, columns, ["".join(map(copy_row, rows))])
        else:
            conn = self.session.connection()
            conn.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in rows])

    def _copy_text(self, table: Table, columns: Sequence[str], parts: Iterable[str]) -> None:
        """COPY rows already in PostgreSQL's text format (see :func:`copy_row`). Each part
        is sent as soon as it is made, so the database stores it while the next is made."""
        conn = self.session.connection()
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        statement = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"
        with cursor, self._copy_from(cursor, statement) as copy:
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
            row = cursor.execute(_PG_RESERVE_IDS, (sequences[table.name], count)).fetchone()
        return list(row[0]) if row and row[0] else []

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
            self.copy_rows(table, columns, [[row[c] for c in columns] for row in todo])
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
