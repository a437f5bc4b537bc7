"""Storing the crawl's outcomes: barcodes with the loader's rules, every SKU's lookup."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from scrapy.exceptions import CloseSpider

from colesbarcodes.config import setting_bool, setting_float, setting_int, setting_str
from colesbarcodes.crawl.control import close_crawl
from colesbarcodes.db.engine import (
    DATABASE_ERRORS,
    database_url,
    error_detail,
    make_engine,
    migrate,
    redact,
    session_factory,
    transient,
)
from colesbarcodes.db.lookups import LookupRow, record_lookups
from colesbarcodes.extensions.run_ledger import CrawlRunLedger
from colesbarcodes.inbox.lines import ProductLine
from colesbarcodes.items import BarcodeLookup, Outcome
from colesbarcodes.signals import flush_requested, lookups_stored, lookups_unstored

if TYPE_CHECKING:
    from typing import Self

    from scrapy.crawler import Crawler
    from scrapy.settings import BaseSettings
    from sqlalchemy.engine import Engine

__all__ = ["BarcodeUpsertPipeline", "UpsertConfig"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class UpsertConfig:
    """The pipeline's settings: ``DATABASE_URL``, ``COLES_UPSERT_BATCH_SIZE`` (outcomes per
    transaction), ``COLES_UPSERT_MAX_DELAY`` (seconds an outcome may wait for its batch),
    ``COLES_DB_RETRIES`` (attempts to store a batch), ``COLES_DB_WRITE_THREAD`` (write in a
    worker thread) and ``COLES_JOB`` (scrapyd's job id, recorded with every lookup)."""

    database_url: str = field(default_factory=database_url)
    batch_size: int = 500
    max_delay: float = 5.0
    retries: int = 5
    write_in_thread: bool = False
    job: str | None = None

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> Self:
        return cls(
            database_url=setting_str(settings, "DATABASE_URL"),
            batch_size=setting_int(settings, "COLES_UPSERT_BATCH_SIZE"),
            max_delay=setting_float(settings, "COLES_UPSERT_MAX_DELAY"),
            retries=setting_int(settings, "COLES_DB_RETRIES"),
            write_in_thread=setting_bool(settings, "COLES_DB_WRITE_THREAD"),
            job=setting_str(settings, "COLES_JOB") or None,
        )


class BarcodeUpsertPipeline:
    """Writes outcomes in batches, each batch in its own transaction.

    A batch is written on the reactor's thread unless ``COLES_DB_WRITE_THREAD`` is set:
    a batch takes milliseconds, and from a worker thread it costs the crawl more (the
    driver's every wait is a hand-over of the interpreter lock; see ``settings.py``).

    Found barcodes go through the same rules as the loader's imports (same GTIN on
    another product: merge and record; a product with a different barcode keeps it and
    the clash is recorded). Every outcome becomes a row of ``lookups``, with the run's key
    from the run ledger (:class:`~colesbarcodes.extensions.run_ledger.CrawlRunLedger`);
    each committed batch is announced with the ``lookups_stored`` signal.

    If the database stays unreachable after ``COLES_DB_RETRIES`` attempts, the spider is
    closed and the outcomes not yet stored are handed on with the ``lookups_unstored``
    signal (the inbox files' owner writes them back to the inbox: found barcodes included,
    so nothing scraped is lost).
    """

    def __init__(self, crawler: Crawler, config: UpsertConfig) -> None:
        self.crawler = crawler
        self.config = config
        self.engine: Engine | None = None
        self.buffer: list[BarcodeLookup] = []
        self.oldest: float | None = None
        self.unstored: list[BarcodeLookup] = []  # kept for the spill file once writing failed
        self.broken = False
        self._lock = asyncio.Lock()
        self._ticker: asyncio.Task[None] | None = None
        self._closing: asyncio.Future[None] | None = None
        self.run_key: str | None = None  # the run ledger's identity of this crawl

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        pipeline = cls(crawler, UpsertConfig.from_settings(crawler.settings))
        crawler.signals.connect(pipeline.flush_requested, signal=flush_requested)
        return pipeline

    async def flush_requested(self) -> None:
        if self.engine is not None:
            await self.flush()

    async def open_spider(self) -> None:
        # Every lookup carries the run that stored it, so that a run the ledger distrusts
        # when it ends does not hide its SKUs from the next one (no ledger: no key).
        ledger = self.crawler.get_extension(CrawlRunLedger)
        self.run_key = ledger.run_key if ledger is not None else None
        self.engine = make_engine(self.config.database_url)
        try:  # a connection cut meanwhile is retried (in the thread)
            await asyncio.to_thread(migrate, self.engine, attempts=self.config.retries)
        except DATABASE_ERRORS as exc:
            detail = error_detail(exc)
            raise CloseSpider(
                f"database_unavailable: {redact(self.config.database_url)}: {detail}"
            ) from None
        self._ticker = asyncio.ensure_future(self._flush_when_due())

    async def _flush_when_due(self) -> None:
        """Flush a partial batch once its oldest item waited ``max_delay`` seconds."""
        while True:
            await asyncio.sleep(min(self.config.max_delay, 1.0))
            if self.oldest is not None and time.monotonic() - self.oldest >= self.config.max_delay:
                # Shielded: stopping the ticker must not abandon a batch being committed.
                await asyncio.shield(self.flush())

    async def process_item(self, item: Any) -> Any:
        if not isinstance(item, BarcodeLookup):
            return item
        stats = self.crawler.stats
        if stats is None:
            raise RuntimeError("the crawler has no stats collector")
        stats.inc_value(f"coles/outcome/{item.outcome.value}")
        if self.broken:
            self.unstored.append(item)
            return item
        self.buffer.append(item)
        if self.oldest is None:
            self.oldest = time.monotonic()
        if len(self.buffer) >= self.config.batch_size:
            await self.flush()
        return item

    async def flush(self) -> None:
        async with self._lock:
            batch, self.buffer, self.oldest = self.buffer, [], None
            if not batch or self.broken:
                self.unstored.extend(batch)
                return
            for attempt in range(1, self.config.retries + 1):
                try:
                    if self.config.write_in_thread:
                        await asyncio.to_thread(self._write, batch)
                    else:
                        self._write(batch)
                    break
                except DATABASE_ERRORS as exc:
                    detail = error_detail(exc)
                    # The loader's policy: only what another attempt can get past is
                    # retried (a value the database refuses fails the same way again).
                    if attempt == self.config.retries or not transient(exc):
                        self._give_up(batch, detail)
                        return
                    delay = min(2.0**attempt, 30.0)
                    logger.warning(
                        "Storing %d outcomes failed (%s); retrying in %.0fs (%d/%d)",
                        len(batch),
                        detail,
                        delay,
                        attempt,
                        self.config.retries,
                    )
                    await asyncio.sleep(delay)
            self._account(batch)

    def _write(self, batch: list[BarcodeLookup]) -> None:
        if self.engine is None:
            raise RuntimeError("the pipeline is not open")
        now = datetime.now(UTC)
        rows: list[LookupRow] = []
        found: list[tuple[int, ProductLine]] = []
        for number, item in enumerate(batch, 1):
            if item.stored:
                continue
            rows.append(
                LookupRow(
                    company=item.company,
                    sku=item.sku,
                    outcome=item.outcome.value,
                    store_id=item.store_id,
                    barcode=item.barcode,
                    raw_barcode=item.raw_barcode,
                    reason=item.reason,
                    file=item.file,
                    job=self.config.job,
                    looked_up_at=now,
                    run_key=self.run_key,
                )
            )
            if item.outcome is Outcome.FOUND and item.gtin is not None:
                line = ProductLine(
                    company=item.company,
                    sku=item.sku,
                    name=item.name,
                    brand=item.brand,
                    size=item.size,
                    barcode=item.gtin,
                    scraped_at=now,
                )
                found.append((number, line))
        started = time.perf_counter()
        with session_factory(self.engine).begin() as session:
            stats = record_lookups(
                session, rows, found, source=f"crawl {self.config.job or ''}".strip()
            )
        if self.crawler.stats is not None:
            self.crawler.stats.inc_value(
                "coles/db_write_ms", round((time.perf_counter() - started) * 1000)
            )
            self.crawler.stats.inc_value("coles/stored", len(rows))
            self.crawler.stats.inc_value("coles/merges", stats.merges)
            self.crawler.stats.inc_value("coles/conflicts", stats.conflicts)

    def _account(self, batch: list[BarcodeLookup]) -> None:
        """Tell the components that act on stored outcomes (the inbox files, the frontier)."""
        self.crawler.signals.send_catch_log(lookups_stored, items=batch)

    def _give_up(self, batch: list[BarcodeLookup], detail: str) -> None:
        self.broken = True
        self.unstored.extend(batch)
        logger.error("Outcomes cannot be stored (%s): closing the spider", detail)
        self._closing = asyncio.ensure_future(close_crawl(self.crawler, "database_unavailable"))

    async def close_spider(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        await self.flush()
        if self.broken:
            unstored = [item for item in self.unstored if not item.stored]
            if unstored:  # the inbox files' owner keeps them for the next run
                self.crawler.signals.send_catch_log(lookups_unstored, items=unstored)
        if self.engine is not None:
            self.engine.dispose()
