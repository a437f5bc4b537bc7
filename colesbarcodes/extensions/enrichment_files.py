"""The barcode-enrichment inbox files of a crawl, from claim to finish, in one place."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from scrapy import signals
from scrapy.exceptions import NotConfigured

from colesbarcodes.config import setting_bool, setting_str
from colesbarcodes.crawl.sku_source import SkuLine
from colesbarcodes.inbox.enrichment import EnrichmentFile, EnrichmentInbox, sku_value, spill_file
from colesbarcodes.items import Outcome
from colesbarcodes.signals import lookups_stored, lookups_unstored, work_unit_taken

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable
    from typing import Self

    from scrapy.crawler import Crawler
    from scrapy.settings import BaseSettings

    from colesbarcodes.items import BarcodeLookup

__all__ = ["EnrichmentFiles", "EnrichmentFilesConfig"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EnrichmentFilesConfig:
    """The inbox files' settings: ``COLES_ENRICHMENT_INBOX`` (the inbox's directory) and
    ``COLES_ARCHIVE_FINISHED_FILES`` (finished files move to ``archive/`` instead of being
    deleted). ``COLES_ENRICHMENT_FILES`` turns the extension on."""

    inbox: str = "inboxes/barcode_enrichment_inbox"
    archive: bool = False

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> Self:
        return cls(
            inbox=setting_str(settings, "COLES_ENRICHMENT_INBOX"),
            archive=setting_bool(settings, "COLES_ARCHIVE_FINISHED_FILES"),
        )


class EnrichmentFiles:
    """Owns the life of the enrichment inbox's files during a crawl.

    A :class:`~colesbarcodes.crawl.sku_source.SkuSource`: the spider reads the SKUs of one file
    after another (:meth:`lines`, which claims them with :meth:`claim_next`) and makes
    requests for them; every other step happens here, driven by signals: a claimed file is announced
    (``work_unit_taken``, for the prefill); the outcomes the pipeline committed
    (``lookups_stored``) are counted per file, and a file whose every SKU has one is
    finished (failed SKUs to a retry file, then archived or deleted); outcomes the
    pipeline could not store (``lookups_unstored``) go to a spill file in the inbox; when
    the spider closes, unfinished files stay in ``processing/`` and their claims are
    released for the next run. Stat: ``coles/files_finished``.

    Enabled by ``COLES_ENRICHMENT_FILES`` (the barcode spider's ``custom_settings``);
    the inbox is ``COLES_ENRICHMENT_INBOX``.
    """

    def __init__(self, crawler: Crawler, config: EnrichmentFilesConfig) -> None:
        self.crawler = crawler
        self.config = config
        self.inbox = EnrichmentInbox(config.inbox, archive=config.archive)
        self.files: dict[str, EnrichmentFile] = {}  # claim name → claimed, not finished
        self.seen: set[str] = set()  # SKUs handed out by this crawl

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        settings = crawler.settings
        if not setting_bool(settings, "COLES_ENRICHMENT_FILES"):
            raise NotConfigured
        extension = cls(crawler, EnrichmentFilesConfig.from_settings(settings))
        crawler.signals.connect(extension.stored, signal=lookups_stored)
        crawler.signals.connect(extension.unstored, signal=lookups_unstored)
        crawler.signals.connect(extension.spider_closed, signal=signals.spider_closed)
        return extension

    def has_work(self) -> bool:
        return self.inbox.inbox.has_work()

    async def ready(self) -> bool:
        if self.has_work():
            return True
        logger.info("The inbox %s is empty: nothing to look up", self.inbox.inbox.root)
        return False

    async def lines(self, limit: int = 0) -> AsyncIterator[SkuLine]:
        """The SKUs of the waiting files, oldest file first, until the inbox is empty or
        ``limit`` SKUs were handed out. A SKU already handed out for an earlier file is
        settled as ``duplicate``."""
        taken = 0
        while (unit := self.claim_next()) is not None:
            for sku, line in unit.skus.items():
                if limit and taken >= limit:
                    break
                taken += 1
                if sku in self.seen:
                    yield SkuLine(
                        sku,
                        line.store_id,
                        unit.name,
                        outcome=Outcome.DUPLICATE,
                        reason="looked up for an earlier file of this crawl",
                    )
                    continue
                self.seen.add(sku)
                yield SkuLine(
                    sku,
                    line.store_id,
                    unit.name,
                    barcode=line.barcode,
                    name=line.name,
                    brand=line.brand,
                    size=line.size,
                )
            if limit and taken >= limit:
                logger.info("Reached the limit of %d SKUs", limit)
                return

    def claim_next(self) -> EnrichmentFile | None:
        """The oldest waiting file, claimed and read (bad lines quarantined); None when
        the inbox is empty (retry files written by this crawl are left for the next). A
        file without a SKU (empty, or every line quarantined) is finished at once: no
        outcome will ever come to finish it later."""
        while (unit := self.inbox.claim_next()) is not None:
            logger.info(
                "Taking %s: %d SKUs (%d lines quarantined)",
                unit.claimed.original_name,
                len(unit.skus),
                unit.quarantined,
            )
            if unit.skus:
                self.files[unit.name] = unit
                self.crawler.signals.send_catch_log(work_unit_taken, unit=unit)
                return unit
            self._finish(unit)
        return None

    def _finish(self, unit: EnrichmentFile) -> None:
        retry = self.inbox.finish(unit)
        self.files.pop(unit.name, None)
        if self.crawler.stats is not None:
            self.crawler.stats.inc_value("coles/files_finished")
        logger.info(
            "Finished %s: %d SKUs%s",
            unit.claimed.original_name,
            len(unit.skus),
            f", {len(unit.failed)} failed ones written to {retry.name}" if retry else "",
        )

    def stored(self, items: Iterable[BarcodeLookup]) -> None:
        """Count committed outcomes per file and finish the files that are complete."""
        touched = set()
        for item in items:
            unit = self.files.get(item.file or "")
            if unit is not None:
                unit.record(item.sku, failed=item.outcome is Outcome.FAILED)
                touched.add(unit.name)
        for name in touched:
            unit = self.files[name]
            if unit.complete:
                self._finish(unit)

    def unstored(self, items: Iterable[BarcodeLookup]) -> None:
        """Write outcomes that could not be stored back to the inbox, for the next run
        (found barcodes included, so nothing scraped is lost)."""
        rows: list[dict[str, Any]] = [
            {
                "sku": sku_value(i.sku),
                "store_id": i.store_id,
                "barcode": i.barcode,
                "name": i.name,
                "brand": i.brand,
                "size": i.size,
            }
            for i in items
            if not i.stored
        ]
        if not rows:
            return
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        path = spill_file(self.inbox.inbox.root, stamp, rows)
        logger.error("%d outcomes not stored; written to %s for the next run", len(rows), path)

    def spider_closed(self) -> None:
        for unit in self.files.values():
            logger.info(
                "%s stays in processing/: %d of %d SKUs have an outcome; the next run resumes it",
                unit.claimed.original_name,
                len(unit.outcomes),
                len(unit.skus),
            )
            unit.claimed.release()
        self.files.clear()
