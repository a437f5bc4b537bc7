"""Queueing work for the barcode crawl: the SKUs still without a barcode, as one file of
the barcode-enrichment inbox (``coles-loader queue-missing-barcodes``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from colesbarcodes.db.engine import session_factory
from colesbarcodes.db.lookups import skus_without_barcode
from colesbarcodes.inbox.enrichment import write_enrichment_file

if TYPE_CHECKING:
    from pathlib import Path

    from sqlalchemy.engine import Engine

__all__ = ["queue_missing_barcodes"]


def queue_missing_barcodes(
    engine: Engine, inbox: Path, company: str, store: str | None, limit: int | None
) -> tuple[int, Path | None]:
    """Write the SKUs of ``company`` (at ``store``, at most ``limit``) whose products have
    no barcode into ``inbox`` as ``missing-<company>-<UTC time>.jsonl``: how many, and the
    file (None, and no file, when every SKU has a barcode)."""
    with session_factory(engine)() as session:
        missing = skus_without_barcode(session, company, store, limit)
    if not missing:
        return 0, None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    target = inbox / f"missing-{company}-{stamp}.jsonl"
    write_enrichment_file(target, missing, company)
    return len(missing), target
