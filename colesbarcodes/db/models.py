"""The product database: typed SQLAlchemy 2.0 models shared by the loader and the crawls.

The schema encodes the rules the old system broke: a company SKU is a row of its own,
unique on (company, sku), so one SKU can never point at two products; a barcode is unique
when present; merges and barcode conflicts are rows, never silent overwrites.
Schema changes go through the Alembic migrations in ``colesbarcodes/db/migrations``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "BarcodeConflict",
    "Base",
    "CompanySku",
    "CrawlRun",
    "ImportRun",
    "ImportedFile",
    "Lookup",
    "PriceHistory",
    "Product",
    "ProductGroup",
    "ProductGroupMember",
    "ProductMerge",
    "QuarantinedLine",
    "Store",
    "StorePrice",
    "utcnow",
]

# Integer primary keys that autoincrement on SQLite and are 64-bit on PostgreSQL.
Id = BigInteger().with_variant(Integer(), "sqlite")
Money = Numeric(12, 3, asdecimal=False)
Text1000 = String(1000)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON}


PRODUCTS_FILLFACTOR = 50  # percent of each page filled by inserts (PostgreSQL)


class Product(Base):
    """A product. When a site reformats its catalogue every row is updated at once (and a
    SKU named differently at each store once per batch): on PostgreSQL the pages are kept
    half empty (``fillfactor``), so each new row version fits on its page and needs no
    index entry (a HOT update: no indexed column changes)."""

    __tablename__ = "products"
    __table_args__ = ({"postgresql_with": {"fillfactor": PRODUCTS_FILLFACTOR}},)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str | None] = mapped_column(Text1000)
    brand: Mapped[str | None] = mapped_column(Text1000)
    size: Mapped[str | None] = mapped_column(Text1000)
    barcode: Mapped[str | None] = mapped_column(String(14), unique=True)
    barcode_scope: Mapped[str | None] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class CompanySku(Base):
    __tablename__ = "company_skus"
    __table_args__ = (UniqueConstraint("company", "sku"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    company: Mapped[str] = mapped_column(String(32))
    sku: Mapped[str] = mapped_column(String(64))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Store(Base):
    __tablename__ = "stores"
    __table_args__ = (UniqueConstraint("company", "store_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    company: Mapped[str] = mapped_column(String(32))
    store_id: Mapped[str] = mapped_column(String(32))
    name: Mapped[str | None] = mapped_column(Text1000)
    state: Mapped[str | None] = mapped_column(String(32))


STORE_PRICES_FILLFACTOR = 50  # percent of each page filled by inserts (PostgreSQL)


class StorePrice(Base):
    """The current price of one company SKU at one store (prices follow the SKU in merges).

    Written in bulk by every import (one row per store and SKU): the keys form the primary
    key, store first (a store's file reads and adds one stretch of its index), with an
    index of its own for look-ups by SKU; they are not foreign keys, whose per-row checks
    would cost more than the rest of the write. Only the import writes it.
    Each day's import updates most rows (``last_seen`` at least): on PostgreSQL its pages
    are kept half empty (``fillfactor``) so that the new row version fits on the same page
    and the update needs no new index entries (a HOT update; no indexed column changes).
    """

    __tablename__ = "store_prices"
    __table_args__ = (
        Index("ix_store_prices_sku_pk", "sku_pk"),
        {"postgresql_with": {"fillfactor": STORE_PRICES_FILLFACTOR}},
    )

    store_pk: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=False)
    sku_pk: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=False)
    price: Mapped[float | None] = mapped_column(Money)
    was_price: Mapped[float | None] = mapped_column(Money)
    unit_price: Mapped[float | None] = mapped_column(Money)
    available: Mapped[bool | None] = mapped_column(Boolean)
    url: Mapped[str | None] = mapped_column(Text1000)
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PriceHistory(Base):
    """One row each time a store's price of a SKU changes: the previous and the new price.

    An append-only log, written in bulk: its keys are indexed but not foreign keys (the
    per-row checks would cost more than the import); rows move with their SKU in merges.
    """

    __tablename__ = "price_history"
    __table_args__ = (Index("ix_price_history_sku_store", "sku_pk", "store_pk"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    store_pk: Mapped[int] = mapped_column(Id)
    sku_pk: Mapped[int] = mapped_column(Id)
    previous_price: Mapped[float | None] = mapped_column(Money)
    price: Mapped[float | None] = mapped_column(Money)
    was_price: Mapped[float | None] = mapped_column(Money)
    unit_price: Mapped[float | None] = mapped_column(Money)
    observed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class BarcodeConflict(Base):
    """A barcode offered for a product that already holds a different one (kept, not applied)."""

    __tablename__ = "barcode_conflicts"
    __table_args__ = (UniqueConstraint("company", "sku", "existing_barcode", "offered_barcode"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    company: Mapped[str] = mapped_column(String(32))
    sku: Mapped[str] = mapped_column(String(64))
    existing_barcode: Mapped[str] = mapped_column(String(14), default="")  # "" = none
    offered_barcode: Mapped[str] = mapped_column(String(14))
    reason: Mapped[str] = mapped_column(String(200))
    source: Mapped[str | None] = mapped_column(Text1000)
    detected_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ProductMerge(Base):
    """A product folded into another; ``snapshot`` keeps everything the merged row held."""

    __tablename__ = "product_merges"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    survivor_id: Mapped[int] = mapped_column(BigInteger, index=True)
    merged_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    reason: Mapped[str] = mapped_column(String(200))
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSON)
    source: Mapped[str | None] = mapped_column(Text1000)
    merged_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ProductGroup(Base):
    """Products of different companies that look like one item (same brand, name and size)."""

    __tablename__ = "product_groups"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    key: Mapped[str] = mapped_column(String(1000), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ProductGroupMember(Base):
    __tablename__ = "product_group_members"

    group_id: Mapped[int] = mapped_column(
        ForeignKey("product_groups.id", ondelete="CASCADE"), primary_key=True
    )
    product_id: Mapped[int] = mapped_column(
        ForeignKey("products.id", ondelete="CASCADE"), primary_key=True, unique=True
    )


class ImportedFile(Base):
    """The import ledger: how far each claimed inbox file got, committed with each batch."""

    __tablename__ = "imported_files"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    inbox: Mapped[str] = mapped_column(String(32))
    claim_name: Mapped[str] = mapped_column(String(400), unique=True)
    original_name: Mapped[str] = mapped_column(String(400))
    lines_done: Mapped[int] = mapped_column(Integer, default=0)
    lines_imported: Mapped[int] = mapped_column(Integer, default=0)
    lines_quarantined: Mapped[int] = mapped_column(Integer, default=0)
    rows_skipped: Mapped[int] = mapped_column(Integer, default=0)
    barcodes_rejected: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(20), default="processing")
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class QuarantinedLine(Base):
    """A line that was not imported (or imported without its invalid barcode), with why."""

    __tablename__ = "quarantined_lines"
    __table_args__ = (UniqueConstraint("file_id", "line_no"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("imported_files.id"))
    line_no: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    imported: Mapped[bool] = mapped_column(Boolean, default=False)
    raw: Mapped[str | None] = mapped_column(Text)


class Lookup(Base):
    """One SKU's outcome in a barcode crawl: found, prefilled, no barcode, not found, ...

    Later crawls read it to skip SKUs that recently had no barcode, and a resumed crawl
    to skip SKUs of a file whose outcome is already stored.
    """

    __tablename__ = "lookups"
    __table_args__ = (
        Index("ix_lookups_company_sku_at", "company", "sku", "looked_up_at"),
        Index("ix_lookups_file", "file"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    company: Mapped[str] = mapped_column(String(32))
    sku: Mapped[str] = mapped_column(String(64))
    store_id: Mapped[str | None] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(20))
    barcode: Mapped[str | None] = mapped_column(String(14))
    raw_barcode: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text1000)
    file: Mapped[str | None] = mapped_column(String(400))
    job: Mapped[str | None] = mapped_column(String(100))
    looked_up_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The crawl that stored it (``crawl_runs.run_key``; no foreign key: the ledger row is
    # written when the crawl ends, and a crawl killed before then has none). NULL: a crawl
    # without a ledger, or stored before runs had keys.
    run_key: Mapped[str | None] = mapped_column(String(32))


class CrawlRun(Base):
    """The run ledger: one row per barcode crawl, written when it ends.

    When it ran, which scrapyd job (None when run by hand), how it ended (``finish_reason``,
    e.g. ``finished`` or ``monitor_failed: failed share 0.40 > 0.25``), the monitors'
    verdict, its SKUs per outcome (``{"found": 120, "failed": 3, ...}``) and all its stats.

    ``run_key`` is the run's identity from its start, stored with each of its lookups;
    ``distrust_reason`` (NULL: trusted) says why its answers without a barcode are not
    believed, e.g. ``drift monitor failed: gtin share 0.00 < 0.45 (...)``: the prefill
    asks for those SKUs again instead of skipping them as recently checked.
    """

    __tablename__ = "crawl_runs"
    __table_args__ = (
        Index("ix_crawl_runs_started_at", "started_at"),
        Index("ix_crawl_runs_run_key", "run_key", unique=True),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    spider: Mapped[str] = mapped_column(String(100))
    job: Mapped[str | None] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finish_reason: Mapped[str] = mapped_column(Text1000)
    monitor_result: Mapped[str | None] = mapped_column(String(20))  # passed, failed, None: off
    monitor_detail: Mapped[str | None] = mapped_column(Text1000)  # the failed checks
    outcomes: Mapped[dict[str, Any]] = mapped_column(JSON)
    stats: Mapped[dict[str, Any]] = mapped_column(JSON)
    node: Mapped[str | None] = mapped_column(String(255))  # host the crawl ran on
    run_key: Mapped[str | None] = mapped_column(String(32))  # NULL: recorded before keys
    distrust_reason: Mapped[str | None] = mapped_column(Text1000)


class ImportRun(Base):
    """The run ledger of imports: one row per ``coles-loader update`` cycle that had files
    (or failed), written when it ends.

    When it ran and on which host, the inbox, how it ended (``finished``, or ``failed:
    <error>``), the files it imported (name, lines, imported, quarantined) and its counts
    (lines, products and SKUs created, barcodes set, merges, conflicts, price changes).
    """

    __tablename__ = "import_runs"
    __table_args__ = (Index("ix_import_runs_started_at", "started_at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    node: Mapped[str] = mapped_column(String(255))
    inbox: Mapped[str] = mapped_column(String(400))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finish_reason: Mapped[str] = mapped_column(Text1000)
    files: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON)
