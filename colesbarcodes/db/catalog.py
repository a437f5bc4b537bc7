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
prices and rows are COPYed; SQLite goes through a staging table for prices."""

from __future__ import annotations

from itertools import islice
from typing import TYPE_CHECKING

from colesbarcodes.db.batch_read import BatchReader
from colesbarcodes.db.batch_state import BatchStats
from colesbarcodes.db.batch_write import BatchWriter, merge_products

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import datetime

    from sqlalchemy.orm import Session

    from colesbarcodes.inbox.lines import ProductLine

__all__ = ["BatchReader", "BatchStats", "apply_lines", "merge_products"]


def apply_lines(
    session: Session,
    lines: Sequence[tuple[int, ProductLine]],
    *,
    source: str | Sequence[tuple[str, int]],
    default_seen: datetime | None = None,
    reader: BatchReader | None = None,
    side_work: Callable[[], bool] | None = None,
) -> BatchStats:
    """Apply numbered product lines, in order, inside the caller's transaction.

    ``source`` (e.g. the file name) is recorded with each merge and conflict, with the
    line number: one for all the lines, or ``(source, lines)`` runs of them in order (a
    batch of several files); ``default_seen`` is the observation time of lines without ``scraped_at``.
    ``reader``, if given, has read exactly these lines already (and ``default_seen`` is
    its own). ``side_work``, if given, runs while the database stores COPYed rows: steps
    of CPU work that need no database (see :class:`BatchWriter`).
    """
    stats = BatchStats(lines=len(lines))
    if not lines:
        return stats
    if reader is None:
        reader = BatchReader(session, default_seen)
        reader.read(lines)
    reader.finish(lines)
    state = reader.state
    writer = BatchWriter(session, side_work)
    prices = reader.observations.prices
    stores = writer.store_ids(reader.observations.stores)
    with writer.new_prices_copied(prices, stores, state.sku_pk):
        observe = state.observe
        runs = [(source, len(lines))] if isinstance(source, str) else source
        if sum(count for _, count in runs) != len(lines) or len(reader.keys) != len(lines):
            raise ValueError("the sources' runs, the lines and the lines read differ in number")
        keyed = zip(reader.keys, lines, strict=True)
        for name, count in runs:
            for key, (number, line) in islice(keyed, count):
                observe(key, line, name, number)
    stats.barcodes_set = state.barcodes_set
    real = writer.write_products(state, stats)
    writer.write_merges(state, real, stats)
    writer.write_skus(state, real, stats)
    writer.write_conflicts(state, real, stats)
    writer.write_prices(prices, stores, state.sku_pk, stats)
    return stats
