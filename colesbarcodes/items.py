"""Items of the barcode crawl."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from colesbarcodes.gtin import Gtin


class Outcome(enum.StrEnum):
    """What became of one SKU of an enrichment file."""

    FOUND = "found"  # the site gave a valid GTIN
    PREFILLED = "prefilled"  # the database already had its barcode: no request
    NO_BARCODE = "no_barcode"  # the product record has no GTIN
    NOT_FOUND = "not_found"  # unknown or delisted SKU
    INVALID_BARCODE = "invalid_barcode"  # the site's GTIN fails validation
    FAILED = "failed"  # no answer after retries: written to a retry file
    RECENTLY_CHECKED = "recently_checked"  # had no barcode within the re-check age: skipped
    DUPLICATE = "duplicate"  # already looked up for an earlier file of this crawl


@dataclass
class BarcodeLookup:
    """One SKU's outcome; ``stored`` marks an outcome an earlier run already stored.

    ``frontier_read`` names the frontier read the SKU was taken in (None when it came from an
    inbox file): the unit the prefill loads its knowledge for. A found barcode travels as
    the :class:`~colesbarcodes.gtin.Gtin` it was validated into (``gtin``).
    """

    sku: str
    outcome: Outcome
    company: str = "coles"
    store_id: str | None = None
    barcode: str | None = None  # the code recorded with the lookup (from ``gtin`` if given)
    gtin: Gtin | None = None  # a found barcode, validated where it was read
    raw_barcode: str | None = None
    name: str | None = None
    brand: str | None = None
    size: str | None = None
    reason: str | None = None
    file: str | None = None
    stored: bool = False
    frontier_read: str | None = None

    def __post_init__(self) -> None:
        if self.gtin is not None and self.barcode is None:
            self.barcode = self.gtin.code
