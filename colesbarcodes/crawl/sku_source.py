"""Where the barcode crawl's SKUs come from: the enrichment inbox's files
(:class:`~colesbarcodes.extensions.enrichment_files.EnrichmentFiles`) or the shared frontier
(:class:`~colesbarcodes.frontier.worker.FrontierWorker`). Both are crawl components that
keep their own accounting through signals; the spider only reads their lines."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from colesbarcodes.gtin import Gtin
    from colesbarcodes.items import Outcome

__all__ = ["SkuLine", "SkuSource"]


@dataclass(frozen=True, slots=True)
class SkuLine:
    """One SKU to look up, as its source hands it out.

    ``file`` is the enrichment file its outcome is recorded under and ``frontier_read`` the
    frontier read it was taken in. ``barcode`` (with ``name``, ``brand``, ``size``) is a barcode the
    inbox file gave: no request is needed. ``outcome`` (with ``reason``) is an outcome the
    source settled without asking the site: a SKU already looked up by this crawl, or one
    handed out too often.
    """

    sku: str
    store_id: str | None = None
    file: str | None = None
    frontier_read: str | None = None
    barcode: Gtin | None = None
    name: str | None = None
    brand: str | None = None
    size: str | None = None
    outcome: Outcome | None = None
    reason: str | None = None


class SkuSource(Protocol):
    """What the barcode spider needs of a source of SKUs."""

    async def ready(self) -> bool:
        """Get ready to hand out SKUs; False when there is nothing to look up (the site is
        then never asked). A source that cannot be used raises ``CloseSpider``."""
        ...

    def lines(self, limit: int = 0) -> AsyncIterator[SkuLine]:
        """The SKUs to look up, until the source has no more or ``limit`` were handed out
        (0: no limit)."""
        ...
