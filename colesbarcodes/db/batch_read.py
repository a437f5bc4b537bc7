"""Reading what a batch needs to know of the database, as its lines come in."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from itertools import groupby
from operator import attrgetter, itemgetter
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    select,
)

from colesbarcodes.db.batch_state import BatchState, PriceState
from colesbarcodes.db.copy_text import text_array
from colesbarcodes.db.models import (
    CompanySku,
    Product,
)
from colesbarcodes.db.side_work import waits_with_side_work
from colesbarcodes.db.sqlutil import SQLITE_CHUNK, chunked

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from types import TracebackType

    from sqlalchemy.orm import Session

    from colesbarcodes.inbox.lines import ProductLine

__all__ = ["BatchReader", "Observations"]

# What a batch reads on PostgreSQL, on the driver's cursor (plain tuples back: SQLAlchemy's
# row processing cost more than the queries). Per company and store: the SKUs with their
# products and their stored prices at that store (if any). Each key is looked up on its
# own through the unique indexes, which keeps the cost in proportion to the batch
# whatever the statistics say: they lag far behind while an import fills the tables, and
# planned from them, ``sku = ANY(array)`` could become a scan of every SKU checking each
# against the whole array. ``OFFSET 0`` keeps the lateral subquery a nested loop. The
# keys come as one array literal (``text_array``).
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
# A store without any price yet (a first import) is seen once, by the condition outside
# the join, which the database evaluates before the join (a one-time filter), instead of
# once per SKU.
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
    WHERE EXISTS (
        SELECT FROM store_prices WHERE store_pk = (
            SELECT id FROM stores WHERE company = %(company)s AND store_id = %(store)s))
"""


# The SKUs with their products only: for a store whose stored prices the batch reads in
# one go (``_PG_STORE_PRICES``).
_PG_PRODUCT_STATE = """
    SELECT k.sku, s.*
    FROM unnest(%(skus)s::text[]) AS k(sku)
    CROSS JOIN LATERAL (
        SELECT c.id, p.id, p.barcode, p.barcode_scope, p.name, p.brand, p.size
        FROM company_skus c
        JOIN products p ON p.id = c.product_id
        WHERE c.company = %(company)s AND c.sku = k.sku
        OFFSET 0
    ) s
"""


# Every stored price of a store, by SKU id: one range of the primary key, read in order,
# for a batch that names many of the store's SKUs (a store's file names all of them).
# Probing the prices one SKU at a time costs a descent of the index and a heap page for
# each; the range costs a fraction of that per row.
_PG_STORE_PRICES = """
    SELECT x.sku_pk, x.price::float8, x.was_price::float8, x.unit_price::float8,
           x.last_seen, x.available, x.url
    FROM store_prices x
    WHERE x.store_pk = (SELECT id FROM stores WHERE company = %(company)s
                        AND store_id = %(store)s)
"""


# A company's whole catalogue: every SKU with its product. A batch that names a large
# share of a company's SKUs (a store's file names nearly all of them) reads them in one
# go rather than one key at a time: a scan and a hash join cost the database a fraction
# of as many index look-ups (39 ms against about 120 ms for 30,000 SKUs), and the SKUs
# named after it are known without asking. No array of keys: whatever the statistics
# say, no plan checks every SKU against the batch's keys.
_PG_CATALOGUE = """
    SELECT c.sku, c.id, p.id, p.barcode, p.barcode_scope, p.name, p.brand, p.size
    FROM company_skus c
    JOIN products p ON p.id = c.product_id
    WHERE c.company = %(company)s
"""
# How many SKUs there can be at most (every SKU ever made has a number of the sequence):
# read once per batch, before its look-ups, to judge what a catalogue read would cost.
_PG_SKU_BOUND = """
    SELECT coalesce(pg_sequence_last_value(pg_get_serial_sequence('company_skus', 'id')), 0)
"""
# A batch reads a company's catalogue once it has named this many of its SKUs, and at
# least 1/CATALOGUE_SHARE of all the SKUs there can be (so that the read brings at most
# that many times the rows the batch asked for): a small file is asked about key by key.
CATALOGUE_READ_FROM = 2_000
CATALOGUE_SHARE = 8
# A batch reads a store's prices in one range once it has named this many of the store's
# SKUs (below that, per SKU, with the SKU look-ups): a small file for one store of many
# thousand prices is not worth a read of them all.
STORE_PRICES_READ_FROM = 2_000


_PG_BARCODE_STATE = """
    SELECT p.*
    FROM unnest(%s::text[]) AS k(barcode)
    CROSS JOIN LATERAL (
        SELECT id, barcode, barcode_scope, name, brand, size FROM products
        WHERE barcode = k.barcode OFFSET 0
    ) p
"""


# Lines per query while a batch is read ahead: small enough for the database to work on
# the first SKUs while the rest are still being parsed (and for the planner not to think
# the query is worth compiling).
_READ_AHEAD_LINES = 500


class Observations:
    """The prices and stores of a batch's lines: per store and SKU the first and last
    observation and the changes between them. They do not depend on the database, so
    they are collected as the lines are read."""

    def __init__(self, default_seen: datetime) -> None:
        self.default_seen = default_seen
        self.stores: dict[tuple[str, str], dict[str, Any]] = {}  # rows for the stores table
        self.prices: dict[tuple[str, str], dict[tuple[str, str], PriceState]] = {}  # store → SKU →
        self._store: tuple[str, str] | None = None  # the last line's, as lines come in runs
        self._store_prices: dict[tuple[str, str], PriceState] = {}

    def add(self, sku: tuple[str, str], store_id: str, line: ProductLine) -> PriceState | None:
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
            price = self._store_prices[sku] = PriceState(
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
    in; nothing else may use the connection inside the block. ``side_work``, if given, runs
    while the database works on the block's last questions (see
    :mod:`colesbarcodes.db.side_work`): a batch parsed ahead is asked about all at once,
    and its answers would otherwise be waited for idle.
    """

    def __init__(
        self,
        session: Session,
        default_seen: datetime | None = None,
        side_work: Callable[[], bool] | None = None,
    ) -> None:
        self.session = session
        self.side_work = side_work
        self.state = BatchState()
        self.observations = Observations(default_seen or datetime.now(UTC))
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
        # SKUs named per company and store so far, and the stores whose prices are read
        # in one range (see STORE_PRICES_READ_FROM)
        self._named: dict[tuple[str, str], int] = {}
        self._store_read: set[tuple[str, str]] = set()
        # the companies whose catalogue the batch reads (see CATALOGUE_READ_FROM), and
        # how many SKUs there can be at most (read when the look-ups start)
        self._catalogue_read: set[str] = set()
        self._sku_bound: int | None = None
        self._planned = False  # the reads the batch's lines call for were sent
        # barcodes held back once a catalogue is read: most are owned by its products, and
        # only the others are asked about, when its answer is in
        self._held_barcodes: list[str] = []
        # company, store, cursor, what it answers: "sku" (the products and the prices at
        # the store), "price" (the prices alone), "product" (the products alone) or
        # "store" (every price of the store, by SKU id)
        self._answers: list[tuple[str, str | None, Any, str]] = []
        self._barcode_answers: list[Any] = []

    def __enter__(self) -> BatchReader:
        if self._postgresql and self._pipeline is None:
            if self._sku_bound is None:
                with self._driver_connection().cursor() as cursor:
                    row = cursor.execute(_PG_SKU_BOUND).fetchone()
                    self._sku_bound = int(row[0]) if row else 0
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
        if kind is not None:
            pipeline.__exit__(kind, error, traceback)
            return
        self._ask()
        side = None
        if self.side_work is None or not self._answers:
            pipeline.__exit__(None, None, None)  # sends what is queued, waits for answers
        else:
            with waits_with_side_work(self._driver_connection(), self.side_work) as side:
                pipeline.__exit__(None, None, None)
        self._take_answers()
        self._ask_held_barcodes()
        if side is not None:
            side.raise_failure()

    def _driver_connection(self) -> Any:
        return self.session.connection().connection.driver_connection

    def read(
        self, lines: Sequence[tuple[int, ProductLine]], default_seen: datetime | None = None
    ) -> None:
        """Take the next lines of the batch (``default_seen``: from these lines on, the
        observation time of lines without ``scraped_at``, when they come from another
        file than the lines before)."""
        if default_seen is not None:
            self.observations.default_seen = default_seen
        if self._pipeline is not None and len(lines) > _READ_AHEAD_LINES:
            if not self.keys and not self._planned:  # a batch parsed ahead is all here
                self.plan(lines)
            for part in chunked(lines, _READ_AHEAD_LINES):  # keep the queries small
                self._read(part)
        else:
            self._read(lines)

    def plan(self, lines: Sequence[tuple[int, ProductLine]]) -> None:
        """Send the catalogue and store price reads that ``lines``, all the batch's lines
        that are here, call for before their first question (PostgreSQL, inside the
        ``with`` block; :meth:`read` does it for its first lines).

        Lines that come in many at once (a batch parsed while the one before it was stored)
        would otherwise be asked about part by part, key by key, until they had named
        enough SKUs for those reads: a few thousand look-ups that the reads bring anyway.
        Lines are counted, not their distinct SKUs (a third of the cost): a batch that names
        its SKUs many times over may read a catalogue or a store it could have asked about
        key by key, which costs time, never a wrong answer."""
        if self._pipeline is None or self._planned or len(lines) <= _READ_AHEAD_LINES:
            return
        self._planned = True
        products = list(map(_LINE, lines))
        companies = set(map(_COMPANY, products))
        if len(companies) == 1:  # the common case: runs of a store, counted in C
            (company,) = companies
            named = {company: len(products)}
            at_store: dict[tuple[str, str], int] = {}
            for store_id, run in groupby(map(_STORE, products)):
                if store_id is not None:
                    store = (company, store_id)
                    at_store[store] = at_store.get(store, 0) + len(list(run))
        else:
            named, at_store = {}, {}
            for line in products:
                named[line.company] = named.get(line.company, 0) + 1
                if line.store_id is not None:
                    store = (line.company, line.store_id)
                    at_store[store] = at_store.get(store, 0) + 1
        for company, count in named.items():
            if company not in self._catalogue_read:
                self._reads_catalogue(company, len(self._asked_skus.get(company, ())) + count)
        for store, count in at_store.items():
            if store not in self._store_read and count >= STORE_PRICES_READ_FROM:
                self._reads_store(store, count)

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
            if self._reads_catalogue(company, len(products_asked) + len(new)):
                asked.update(new)  # their products come with the company's catalogue
                if store_id is None or self._reads_store((company, store_id), len(new)):
                    continue
                cursor = connection.cursor()
                cursor.execute(
                    _PG_PRICE_STATE,
                    {"company": company, "store": store_id, "skus": text_array(new)},
                )
                self._answers.append((company, store_id, cursor, "price"))
                continue
            known = [sku for sku in new if sku in products_asked]
            fresh = [sku for sku in new if sku not in products_asked] if known else new
            asked.update(new)
            products_asked.update(fresh)
            values = {"company": company, "store": store_id}
            if store_id is not None and self._reads_store((company, store_id), len(new)):
                known = []  # their prices come with the store's
                query, answers = _PG_PRODUCT_STATE, "product"
            else:
                query, answers = _PG_SKU_STATE, "sku"
            if known:
                cursor = connection.cursor()
                cursor.execute(_PG_PRICE_STATE, {**values, "skus": text_array(known)})
                self._answers.append((company, store_id, cursor, "price"))
            if not fresh:
                continue
            cursor = connection.cursor()
            cursor.execute(query, {**values, "skus": text_array(fresh)})
            self._answers.append((company, store_id, cursor, answers))
        barcodes = [
            b for b in dict.fromkeys(self._pending_barcodes) if b not in self._asked_barcodes
        ]
        if barcodes and self._catalogue_read:
            self._asked_barcodes.update(barcodes)
            self._held_barcodes += barcodes
        elif barcodes:
            self._asked_barcodes.update(barcodes)
            cursor = connection.cursor()
            cursor.execute(_PG_BARCODE_STATE, (text_array(barcodes),))
            self._barcode_answers.append(cursor)
        self._pending.clear()
        self._pending_barcodes.clear()
        self._pending_lines = 0

    def _ask_held_barcodes(self) -> None:
        """Ask about the held-back barcodes that no product the batch knows owns (after the
        answers are taken: a catalogue brings the owners of most of them)."""
        owners = self.state.barcode_owner
        barcodes = [b for b in self._held_barcodes if b not in owners]
        self._held_barcodes.clear()
        if not barcodes:
            return
        with self._driver_connection().cursor() as cursor:
            for row in cursor.execute(_PG_BARCODE_STATE, (text_array(barcodes),)).fetchall():
                self.state.remember(*row)

    def _reads_catalogue(self, company: str, named: int) -> bool:
        """Whether the company's SKUs and products are read in one go (sending that read
        once the batch has named enough of them; see CATALOGUE_READ_FROM)."""
        if company in self._catalogue_read:
            return True
        if named < CATALOGUE_READ_FROM or named * CATALOGUE_SHARE < (self._sku_bound or 0):
            return False
        self._catalogue_read.add(company)
        cursor = self._driver_connection().cursor()
        cursor.execute(_PG_CATALOGUE, {"company": company})
        self._answers.append((company, None, cursor, "product"))
        return True

    def _reads_store(self, store: tuple[str, str], named: int) -> bool:
        """Whether the store's prices are read in one range (sending that read once the
        batch has named enough of its SKUs)."""
        if store in self._store_read:
            return True
        count = self._named[store] = self._named.get(store, 0) + named
        if count < STORE_PRICES_READ_FROM:
            return False
        self._store_read.add(store)
        cursor = self._driver_connection().cursor()
        cursor.execute(_PG_STORE_PRICES, {"company": store[0], "store": store[1]})
        self._answers.append((store[0], store[1], cursor, "store"))
        return True

    def _take_answers(self) -> None:
        state, prices = self.state, self.observations.prices
        products, remember = state.products, state.remember
        sku_product, sku_pk = state.sku_product, state.sku_pk
        store_rows: list[tuple[dict[tuple[str, str], PriceState], list[Any]]] = []
        for company, store_id, cursor, answers in self._answers:
            at_store = prices.get((company, store_id), {}) if store_id is not None else {}
            with cursor:
                rows = cursor.fetchall()
            if answers == "price":  # stored prices of SKUs answered by an earlier query
                for row in rows:
                    observed = at_store.get((company, row[0]))
                    if observed is not None:
                        observed.stored = row[1:]
                continue
            if answers == "store":  # matched by SKU id once every SKU is answered
                store_rows.append((at_store, rows))
                continue
            for row in rows:
                sku, pk, product_id = row[0], row[1], row[2]
                if product_id not in products:
                    remember(product_id, row[3], row[4], row[5], row[6], row[7])
                key = (company, sku)
                sku_product[key] = product_id
                sku_pk[key] = pk
                if answers == "sku" and row[11] is not None:  # a price stored at the store
                    observed = at_store.get(key)
                    if observed is not None:
                        observed.stored = row[8:]
        for at_store, rows in store_rows:
            stored = {row[0]: row[1:] for row in rows}
            if not stored:
                continue
            for key, observed in at_store.items():
                pk = sku_pk.get(key)
                if pk is not None:
                    observed.stored = stored.get(pk, observed.stored)
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


_LINE = itemgetter(1)
_COMPANY = attrgetter("company")
_STORE = attrgetter("store_id")


_PRODUCT_STATE_COLUMNS = (
    Product.id,
    Product.barcode,
    Product.barcode_scope,
    Product.name,
    Product.brand,
    Product.size,
)
