"""The listing crawl's optional enrichment file of SKUs without a barcode."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from colesbarcodes.db.engine import (
    DATABASE_ERRORS,
    error_detail,
    make_engine,
    redact,
    session_factory,
)
from colesbarcodes.db.lookups import known_barcodes
from colesbarcodes.inbox.enrichment import write_enrichment_file

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path


__all__ = ["queue_missing_barcodes"]

logger = logging.getLogger(__name__)


_DB_ERRORS: tuple[type[Exception], ...] = (SQLAlchemyError, *DATABASE_ERRORS)


def queue_missing_barcodes(
    database_url: str, inbox: Path, skus: Mapping[int, str], stamp: str
) -> tuple[Path | None, int]:
    """Write the SKUs whose barcode the database does not know into the barcode-enrichment
    inbox as one file ``listing-coles-<stamp>.jsonl`` (lines ``{"company", "sku",
    "store_id"}``); ``skus`` maps each SKU to a store that lists it. (file, SKUs queued).

    If the database cannot be asked, every SKU is queued: the barcode crawl's prefill skips
    the known ones anyway, so this only costs a bigger file.
    """
    known: dict[str, str] = {}
    try:
        engine = make_engine(database_url)
        try:
            with session_factory(engine)() as session:
                known = known_barcodes(session, "coles", [str(sku) for sku in skus])
        finally:
            engine.dispose()
    except _DB_ERRORS as exc:
        detail = error_detail(exc)
        logger.warning(
            "Could not ask %s for known barcodes (%s): queueing every SKU",
            redact(database_url),
            detail,
        )
    missing = [(sku, store) for sku, store in skus.items() if str(sku) not in known]
    if not missing:
        return None, 0
    target = inbox / f"listing-coles-{stamp}.jsonl"
    write_enrichment_file(target, ((str(sku), store) for sku, store in missing), "coles")
    return target, len(missing)
