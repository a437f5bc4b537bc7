"""Work for the barcode crawl: SKUs without a known barcode, queued as one file of the
barcode-enrichment inbox.

Two callers: ``coles-loader queue-missing-barcodes`` (every SKU of a company whose product
has no barcode) and the listing crawl with ``COLES_LISTING_QUEUE_MISSING_BARCODES`` (the SKUs
it listed whose barcode the database does not know).
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from colesbarcodes.db.engine import (
    DATABASE_ERRORS,
    error_detail,
    make_engine,
    redact,
    session_factory,
)
from colesbarcodes.db.lookups import known_barcodes, skus_without_barcode
from colesbarcodes.inbox.enrichment import write_enrichment_file

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from pathlib import Path

    from sqlalchemy.orm import Session

__all__ = ["Queued", "queue_missing_barcodes"]

logger = logging.getLogger(__name__)

_DB_ERRORS: tuple[type[Exception], ...] = (SQLAlchemyError, *DATABASE_ERRORS)


@dataclass(frozen=True, slots=True)
class Queued:
    """The file written (None, and no file, when no SKU was missing) and its SKUs."""

    path: Path | None
    count: int


def queue_missing_barcodes(
    database: Engine | str,
    inbox: Path,
    company: str,
    *,
    listed: Mapping[int, str] | None = None,
    store: str | None = None,
    limit: int | None = None,
    prefix: str = "missing",
    stamp: str | None = None,
) -> Queued:
    """Write the SKUs of ``company`` without a barcode into ``inbox`` as one file
    ``<prefix>-<company>-<stamp>.jsonl`` (lines ``{"company", "sku", "store_id"}``; the
    stamp is the UTC time unless given). ``database`` is an engine, or the URL of one
    opened for this call.

    Without ``listed``: every SKU whose product has no barcode (sold at ``store``, at most
    ``limit``), each with a store that sells it. With ``listed`` (SKU -> a store that lists
    it): those whose barcode the database does not know; if the database cannot be asked,
    every one of them (the barcode crawl's prefill skips the known ones anyway, so this only
    costs a bigger file).
    """
    if listed is None:
        with _session(database) as session:
            missing = skus_without_barcode(session, company, store, limit)
    else:
        known: dict[str, str] = {}
        try:
            with _session(database) as session:
                known = known_barcodes(session, company, [str(sku) for sku in listed])
        except _DB_ERRORS as exc:
            logger.warning(
                "Could not ask %s for known barcodes (%s): queueing every SKU",
                redact(database if isinstance(database, str) else database.url),
                error_detail(exc),
            )
        missing = [(str(sku), store) for sku, store in listed.items() if str(sku) not in known]
    if not missing:
        return Queued(None, 0)
    stamp = stamp or datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    target = inbox / f"{prefix}-{company}-{stamp}.jsonl"
    write_enrichment_file(target, missing, company)
    return Queued(target, len(missing))


@contextmanager
def _session(database: Engine | str) -> Iterator[Session]:
    """A session on ``database``; an engine opened here from a URL is disposed of after."""
    engine = database if isinstance(database, Engine) else make_engine(database)
    try:
        with session_factory(engine)() as session:
            yield session
    finally:
        if engine is not database:
            engine.dispose()
