"""Storing the crawl's outcomes: barcodes with the loader's rules, every SKU's lookup."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from scrapy.exceptions import CloseSpider

from colesbarcodes.db.engine import (
    DATABASE_ERRORS,
    make_engine,
    migrate,
    redact,
    session_factory,
)
from colesbarcodes.db.lookups import LookupRow, record_lookups
from colesbarcodes.gtin import parse_gtin
from colesbarcodes.inbox.lines import ProductLine
from colesbarcodes.items import BarcodeLookup, Outcome
from colesbarcodes.signals import flush_requested, lookups_stored

if TYPE_CHECKING:
    from typing import Self

    from scrapy.crawler import Crawler
    from sqlalchemy.engine import Engine

__all__ = ["BarcodeUpsertPipeline"]

logger = logging.getLogger(__name__)


class BarcodeUpsertPipeline:
    """Writes outcomes in batches, each batch in its own transaction.

    A batch is written on the reactor's thread unless ``COLES_DB_WRITE_THREAD`` is set:
    a batch takes milliseconds, and from a worker thread it costs the crawl more (the
    driver's every wait is a hand-over of the interpreter lock; see ``settings.py``).

    Found barcodes go through the same rules as the loader's imports (same GTIN on
    another product: merge and record; a product with a different barcode keeps it and
    the clash is recorded). Every outcome becomes a row of ``lookups``. A file of the
    inbox is finished (deleted, or archived) once all its SKUs' outcomes are committed.

    If the database stays unreachable after ``COLES_DB_RETRIES`` attempts, the spider is
    closed; outcomes not yet stored are written back to the inbox as a spill file (found
    barcodes included, so nothing scraped is lost) and unfinished files stay claimed for
    the next run.
    """

    def __init__(
        self,
        crawler: Crawler,
        database_url: str,
        batch_size: int,
        max_delay: float,
        retries: int,
        write_in_thread: bool = False,
    ) -> None:
        self.crawler = crawler
        self.database_url = database_url
        self.batch_size = batch_size
        self.max_delay = max_delay
        self.retries = retries
        self.engine: Engine | None = None
        self.write_in_thread = write_in_thread
        self.buffer: list[BarcodeLookup] = []
        self.oldest: float | None = None
        self.unstored: list[BarcodeLookup] = []  # kept for the spill file once writing failed
        self.broken = False
        self._lock = asyncio.Lock()
        self._ticker: asyncio.Task[None] | None = None
        self._closing: asyncio.Future[None] | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        settings = crawler.settings
        pipeline = cls(
            crawler,
            settings.get("DATABASE_URL"),
            settings.getint("COLES_UPSERT_BATCH_SIZE"),
            settings.getfloat("COLES_UPSERT_MAX_DELAY"),
            settings.getint("COLES_DB_RETRIES"),
            settings.getbool("COLES_DB_WRITE_THREAD"),
        )
        crawler.signals.connect(pipeline.flush_requested, signal=flush_requested)
        return pipeline

    async def flush_requested(self) -> None:
        if self.engine is not None:
            await self.flush()

    @property
    def job(self) -> str | None:
        spider = self.crawler.spider
        return getattr(spider, "_job", None) if spider is not None else None

    async def open_spider(self) -> None:
        self.engine = make_engine(self.database_url)
        try:  # a connection cut meanwhile is retried (in the thread)
            await asyncio.to_thread(migrate, self.engine, attempts=self.retries)
        except DATABASE_ERRORS as exc:
            detail = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
            raise CloseSpider(
                f"database_unavailable: {redact(self.database_url)}: {detail}"
            ) from None
        self._ticker = asyncio.ensure_future(self._flush_when_due())

    async def _flush_when_due(self) -> None:
        """Flush a partial batch once its oldest item waited ``max_delay`` seconds."""
        while True:
            await asyncio.sleep(min(self.max_delay, 1.0))
            if self.oldest is not None and time.monotonic() - self.oldest >= self.max_delay:
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
        if len(self.buffer) >= self.batch_size:
            await self.flush()
        return item

    async def flush(self) -> None:
        async with self._lock:
            batch, self.buffer, self.oldest = self.buffer, [], None
            if not batch or self.broken:
                self.unstored.extend(batch)
                return
            for attempt in range(1, self.retries + 1):
                try:
                    if self.write_in_thread:
                        await asyncio.to_thread(self._write, batch)
                    else:
                        self._write(batch)
                    break
                except DATABASE_ERRORS as exc:
                    detail = (
                        str(getattr(exc, "orig", exc)).strip().splitlines()[0]
                        if str(exc)
                        else repr(exc)
                    )
                    if attempt == self.retries:
                        self._give_up(batch, detail)
                        return
                    delay = min(2.0**attempt, 30.0)
                    logger.warning(
                        "Storing %d outcomes failed (%s); retrying in %.0fs (%d/%d)",
                        len(batch),
                        detail,
                        delay,
                        attempt,
                        self.retries,
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
                    job=self.job,
                    looked_up_at=now,
                )
            )
            if item.outcome is Outcome.FOUND and item.barcode:
                line = ProductLine(
                    company=item.company,
                    sku=item.sku,
                    name=item.name,
                    brand=item.brand,
                    size=item.size,
                    barcode=parse_gtin(item.barcode),
                    scraped_at=now,
                )
                found.append((number, line))
        started = time.perf_counter()
        with session_factory(self.engine).begin() as session:
            stats = record_lookups(session, rows, found, source=f"crawl {self.job or ''}".strip())
        if self.crawler.stats is not None:
            self.crawler.stats.inc_value(
                "coles/db_write_ms", round((time.perf_counter() - started) * 1000)
            )
            self.crawler.stats.inc_value("coles/stored", len(rows))
            self.crawler.stats.inc_value("coles/merges", stats.merges)
            self.crawler.stats.inc_value("coles/conflicts", stats.conflicts)

    def _account(self, batch: list[BarcodeLookup]) -> None:
        """Count committed outcomes per file and finish the files that are complete."""
        self.crawler.signals.send_catch_log(lookups_stored, items=batch)
        spider = self.crawler.spider
        files = getattr(spider, "files", {})
        touched = set()
        for item in batch:
            job = files.get(item.file)
            if job is not None:
                job.record(item.sku, failed=item.outcome is Outcome.FAILED)
                touched.add(item.file)
        for name in touched:
            job = files[name]
            if job.complete:
                retry = spider.enrichment.finish(job)  # type: ignore[union-attr]
                del files[name]
                self.crawler.stats.inc_value("coles/files_finished")
                logger.info(
                    "Finished %s: %d SKUs%s",
                    job.claimed.original_name,
                    len(job.skus),
                    f", {len(job.failed)} failed ones written to {retry.name}" if retry else "",
                )

    def _give_up(self, batch: list[BarcodeLookup], detail: str) -> None:
        self.broken = True
        self.unstored.extend(batch)
        logger.error("The database stays unreachable (%s): closing the spider", detail)
        if self.crawler.engine is None:
            raise RuntimeError("the crawler is not running")
        self._closing = asyncio.ensure_future(
            self.crawler.engine.close_spider_async(reason="database_unavailable")
        )

    def _spill(self) -> None:
        """Write outcomes that could not be stored back to the inbox, for the next run."""
        spider = self.crawler.spider
        rows = [
            {
                "sku": int(i.sku) if i.sku.isdigit() else i.sku,
                "store_id": i.store_id,
                "barcode": i.barcode,
                "name": i.name,
                "brand": i.brand,
                "size": i.size,
            }
            for i in self.unstored
            if not i.stored
        ]
        if not rows or spider is None:
            return
        inbox = spider.enrichment.inbox  # type: ignore[attr-defined]
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        path = inbox.root / f"spill-{stamp}-{os.getpid()}.jsonl"
        temp = path.with_name(path.name + ".part")
        with temp.open("wb") as out:
            for row in rows:
                out.write(orjson.dumps(row) + b"\n")
        os.replace(temp, path)
        logger.error("%d outcomes not stored; written to %s for the next run", len(rows), path)

    async def close_spider(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        await self.flush()
        if self.broken:
            self._spill()
        spider = self.crawler.spider
        for job in list(getattr(spider, "files", {}).values()):
            logger.info(
                "%s stays in processing/: %d of %d SKUs have an outcome; the next run resumes it",
                job.claimed.original_name,
                len(job.outcomes),
                len(job.skus),
            )
            job.claimed.release()
        if self.engine is not None:
            self.engine.dispose()
