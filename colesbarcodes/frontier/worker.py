"""The barcode crawl's side of the shared frontier (:mod:`colesbarcodes.frontier.stream`).

With ``COLES_FRONTIER_URL`` set (or ``-a frontier=...``), ``coles_barcodes`` takes its SKUs
from the Redis stream instead of the inbox, through one :class:`FrontierWorker` per crawl
process, an extension the spider reads as its :class:`~colesbarcodes.crawl.sku_source.SkuSource`:

- it takes entries a batch at a time, only while fewer than ``COLES_FRONTIER_PREFETCH``
  of its SKUs are still unanswered (Scrapy reads a spider's ``start()`` eagerly: without
  this bound the first worker would take the whole stream);
- it acknowledges an entry only when the pipeline says the SKU's outcome is committed
  (signal :data:`~colesbarcodes.signals.lookups_stored`), prefilled SKUs included;
- it keeps its unacknowledged entries fresh (a heartbeat every third of
  ``COLES_FRONTIER_CLAIM_TIMEOUT``) and takes back other workers' entries idle for longer
  than that: those of a worker that died;
- when it has nothing left to take it has the pipeline commit its last outcomes at once
  (not after the batching delay: other workers wait for them), and it stops when the
  stream is empty (every SKU fed is done, by someone) or holds only its own SKUs.

A taken-back SKU whose outcome the dead worker had committed but not acknowledged is
recognised by :class:`~colesbarcodes.middlewares.prefill.PrefillMiddleware` (its lookup is
stored for the same inbox file) and acknowledged without a request or a second row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scrapy import signals
from scrapy.exceptions import CloseSpider, NotConfigured

from colesbarcodes.config import (
    ConfigurationError,
    setting_bool,
    setting_float,
    setting_int,
    setting_str,
)
from colesbarcodes.crawl.sku_source import SkuLine
from colesbarcodes.frontier import DEFAULT_KEY
from colesbarcodes.frontier.stream import FRONTIER_ERRORS, Frontier, FrontierEntry, redact_url
from colesbarcodes.gtin import InvalidGtin, parse_gtin, shown
from colesbarcodes.items import BarcodeLookup, Outcome
from colesbarcodes.signals import flush_requested, lookups_stored, work_unit_taken

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from typing import Self

    from scrapy.crawler import Crawler
    from scrapy.settings import BaseSettings
    from twisted.python.failure import Failure

    from colesbarcodes.gtin import Gtin

__all__ = ["FrontierConfig", "FrontierRead", "FrontierWorker", "consumer_name", "redis_url"]

logger = logging.getLogger(__name__)

# Consecutive failed calls to Redis after which the crawl gives up (about a minute at the
# default poll interval).
MAX_REDIS_FAILURES = 30
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def redis_url(name: str, value: str) -> str:
    """``value`` (the setting or argument ``name``) if it is a Redis URL; else
    ConfigurationError, which shows it without its password."""
    if not value.startswith(REDIS_SCHEMES):
        raise ConfigurationError(
            f"{name} must be a Redis URL, redis://[:password@]host:6379/0, "
            f"not {shown(redact_url(value))}"
        )
    return value


def consumer_name(job: str | None = None) -> str:
    """This worker's name in the consumer group: host and process, and the scrapyd job."""
    name = f"{socket.gethostname()}:{os.getpid()}"
    return f"{name}:{job}" if job else name


@dataclass
class FrontierRead:
    """One frontier read: the SKUs taken from the frontier together, a work unit for the
    prefill's bulk queries.

    ``skus`` maps each SKU to the inbox file it was fed from: an outcome already stored
    for that SKU and file (by a worker that died before acknowledging) is not asked again.
    """

    name: str
    skus: dict[str, str | None]
    company: str = "coles"
    file: None = None  # its SKUs come from several inbox files: ``skus`` says which

    @property
    def label(self) -> str:
        return f"frontier read {self.name}"

    @property
    def log_level(self) -> int:
        return logging.DEBUG  # one every few dozen SKUs


@dataclass(frozen=True)
class FrontierConfig:
    """The frontier worker's settings: ``COLES_FRONTIER_URL`` (the Redis; empty: no
    frontier), ``COLES_FRONTIER_KEY`` (its keys' prefix), ``COLES_FRONTIER_BATCH`` (entries
    read at a time), ``COLES_FRONTIER_PREFETCH`` (SKUs held unanswered at most; 0: twice
    ``CONCURRENT_REQUESTS`` x ``COLES_GRAPHQL_BATCH``, enough to keep every request slot
    busy with full GraphQL documents), ``COLES_FRONTIER_CLAIM_TIMEOUT``,
    ``COLES_FRONTIER_POLL``, ``COLES_FRONTIER_MAX_DELIVERIES``, and ``COLES_JOB`` (names
    the worker). ``COLES_FRONTIER_WORKER`` turns the extension on."""

    url: str = ""
    key: str = DEFAULT_KEY
    job: str | None = None
    batch: int = 50
    prefetch: int = 2 * 8 * 24  # with the project's CONCURRENT_REQUESTS and batch size
    claim_timeout: float = 300.0
    poll: float = 1.0
    max_deliveries: int = 5

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> Self:
        url = setting_str(settings, "COLES_FRONTIER_URL")
        prefetch = setting_int(settings, "COLES_FRONTIER_PREFETCH") or 2 * setting_int(
            settings, "CONCURRENT_REQUESTS"
        ) * setting_int(settings, "COLES_GRAPHQL_BATCH")
        return cls(
            url=redis_url("the setting COLES_FRONTIER_URL", url) if url else "",
            key=setting_str(settings, "COLES_FRONTIER_KEY"),
            job=setting_str(settings, "COLES_JOB") or None,
            batch=setting_int(settings, "COLES_FRONTIER_BATCH"),
            prefetch=prefetch,
            claim_timeout=setting_float(settings, "COLES_FRONTIER_CLAIM_TIMEOUT"),
            poll=setting_float(settings, "COLES_FRONTIER_POLL"),
            max_deliveries=setting_int(settings, "COLES_FRONTIER_MAX_DELIVERIES"),
        )


class FrontierWorker:
    """Takes, heartbeats, acknowledges and releases one crawl's frontier entries.

    Enabled by ``COLES_FRONTIER_WORKER`` (the barcode spider's ``custom_settings``) with
    ``COLES_FRONTIER_URL`` set; the spider reads its SKUs with :meth:`lines`. Stats:
    ``frontier/taken``, ``reclaimed``, ``acked``, ``abandoned``, ``given_up``,
    ``released``, ``ack_errors``.
    """

    def __init__(self, crawler: Crawler, config: FrontierConfig) -> None:
        self.crawler = crawler
        self.config = config
        self.url = config.url
        self.key = config.key
        self.consumer = consumer_name(config.job)
        self._frontier: Frontier | None = None  # connected by open()
        self.batch = max(1, config.batch)
        self.prefetch = max(1, config.prefetch)
        self.claim_timeout = config.claim_timeout
        self.poll = config.poll
        self.max_deliveries = config.max_deliveries
        self.in_flight: dict[str, list[str]] = {}  # SKU -> its entry ids, until acknowledged
        self.unanswered: set[str] = set()  # SKUs taken that have no outcome yet
        self.taken = 0
        self._answered = asyncio.Event()
        self._acks: set[asyncio.Task[None]] = set()
        self._heartbeat: asyncio.Task[None] | None = None
        self._last_reclaim = 0.0
        self._failures = 0
        self._opened = False

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        settings = crawler.settings
        if not setting_bool(settings, "COLES_FRONTIER_WORKER") or not setting_str(
            settings, "COLES_FRONTIER_URL"
        ):
            raise NotConfigured
        worker = cls(crawler, FrontierConfig.from_settings(settings))
        connect = crawler.signals.connect
        connect(worker.stored, signal=lookups_stored)
        connect(worker.answered, signal=signals.item_scraped)
        connect(worker.abandoned, signal=signals.item_dropped)
        connect(worker.abandoned, signal=signals.item_error)
        connect(worker.spider_error, signal=signals.spider_error)
        connect(worker.close, signal=signals.spider_closed)
        return worker

    def _inc(self, key: str, count: int = 1) -> None:
        if self.crawler.stats is not None and count:
            self.crawler.stats.inc_value(f"frontier/{key}", count)

    @property
    def frontier(self) -> Frontier:
        if self._frontier is None:
            raise RuntimeError("the frontier is not open: open() first")
        return self._frontier

    async def open(self) -> None:
        """Connect, check the group exists, start the heartbeat. An unusable Redis (bad
        URL, unreachable, refused password) closes the crawl with ``frontier_unavailable``."""
        try:
            self._frontier = Frontier.from_url(self.url, self.key)
            await asyncio.to_thread(self._frontier.ensure_group)
        except FRONTIER_ERRORS as exc:
            raise CloseSpider(f"frontier_unavailable: {redact_url(self.url)}: {exc}") from None
        self._opened = True
        logger.info(
            "Taking SKUs from the frontier %s at %s as %s (claim timeout %.0fs)",
            self.frontier.key,
            redact_url(self.url),
            self.consumer,
            self.claim_timeout,
        )
        self._heartbeat = asyncio.ensure_future(self._beat())

    # -- the spider's source of SKUs ------------------------------------------------------

    async def ready(self) -> bool:
        await self.open()
        return True

    async def lines(self, limit: int = 0) -> AsyncIterator[SkuLine]:
        """SKUs from the shared frontier, a batch at a time, until it is drained. Each batch
        is announced (``work_unit_taken``, for the prefill); a SKU handed out more than
        ``max_deliveries`` times is settled as ``failed``."""
        number = 0
        async for entries in self.batches(limit):
            number += 1
            key = f"{self.consumer}#{number}"
            read = FrontierRead(key, {e.sku: e.file for e in entries})
            self.crawler.signals.send_catch_log(work_unit_taken, unit=read)
            for entry in entries:
                if self.max_deliveries and entry.deliveries > self.max_deliveries:
                    self._inc("given_up")
                    yield SkuLine(
                        entry.sku,
                        entry.store_id,
                        entry.file,
                        key,
                        outcome=Outcome.FAILED,
                        reason=f"handed out {entry.deliveries - 1} times without a stored outcome",
                    )
                    continue
                yield SkuLine(
                    entry.sku,
                    entry.store_id,
                    entry.file,
                    key,
                    barcode=_valid_gtin(entry.barcode),  # checked when fed; a bad one is asked
                    name=entry.name,
                    brand=entry.brand,
                    size=entry.size,
                )

    # -- taking ---------------------------------------------------------------------------

    async def _call(self, what: str, function: Any, *args: Any) -> Any:
        """A Redis call off the reactor; transient failures are retried by the caller's
        loop, persistent ones close the crawl."""
        try:
            result = await asyncio.to_thread(function, *args)
        except FRONTIER_ERRORS as exc:
            self._failures += 1
            logger.warning(
                "Frontier %s failed (%d/%d): %s", what, self._failures, MAX_REDIS_FAILURES, exc
            )
            if self._failures >= MAX_REDIS_FAILURES:
                raise CloseSpider(f"frontier_unavailable: {redact_url(self.url)}: {exc}") from None
            return None
        self._failures = 0
        return result

    def _register(self, entries: list[FrontierEntry]) -> list[FrontierEntry]:
        """Record entries as this worker's; those whose SKU it is already looking up are
        kept (to acknowledge with it) but not looked up twice."""
        fresh = []
        for entry in entries:
            ids = self.in_flight.setdefault(entry.sku, [])
            if entry.id in ids:
                continue
            looking_up = bool(ids)
            ids.append(entry.id)
            if looking_up:
                continue
            self.unanswered.add(entry.sku)
            fresh.append(entry)
        return fresh

    async def batches(self, limit: int = 0) -> AsyncIterator[list[FrontierEntry]]:
        """Batches of entries to look up, until nothing is left but this worker's own (or
        ``limit`` SKUs were taken). Waits while this worker has ``prefetch`` SKUs
        unanswered, and while other workers hold SKUs: if one dies, its SKUs come back
        here after the claim timeout."""
        reclaim_every = max(self.poll, self.claim_timeout / 4)
        while True:
            if limit and self.taken >= limit:
                logger.info("Reached the limit of %d SKUs", limit)
                return
            room = self.prefetch - len(self.unanswered)
            if room <= 0:
                self._answered.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._answered.wait(), timeout=self.poll)
                continue
            count = min(self.batch, room, (limit - self.taken) if limit else room)
            entries: list[FrontierEntry] = []
            now = time.monotonic()
            if now - self._last_reclaim >= reclaim_every:
                self._last_reclaim = now
                entries = (
                    await self._call(
                        "reclaim",
                        self.frontier.reclaim,
                        self.consumer,
                        self.claim_timeout,
                        count,
                    )
                    or []
                )
                if entries:
                    self._inc("reclaimed", len(entries))
                    logger.info(
                        "Took back %d SKUs left unacknowledged for over %.0fs",
                        len(entries),
                        self.claim_timeout,
                    )
                    await self._call(
                        "pruning", self.frontier.prune_consumers, self.claim_timeout, self.consumer
                    )
            if not entries:
                entries = await self._call("read", self.frontier.take, self.consumer, count) or []
            if entries:
                fresh = self._register(entries)
                self.taken += len(fresh)
                self._inc("taken", len(fresh))
                if fresh:
                    yield fresh
                continue
            if self.in_flight and not self.unanswered:
                await self._commit_in_hand()
            remaining = await self._call("length", self.frontier.remaining)
            if remaining == 0:
                logger.info("The frontier is drained: every SKU fed has its outcome stored")
                return
            mine = sum(len(ids) for ids in self.in_flight.values())
            if remaining is not None and remaining <= mine:
                # Only this worker's own SKUs are left: no need to wait for their batch to
                # be committed (the pipeline commits it when the crawl closes).
                logger.info("Nothing left to take: finishing the %d SKUs in hand", mine)
                return
            await asyncio.sleep(self.poll)

    async def _commit_in_hand(self) -> None:
        """Ask for the pending batch of outcomes to be committed now (``flush_requested``).

        Called when this worker has nothing to take and every SKU it holds is answered:
        its last outcomes would otherwise wait for the batching delay
        (``COLES_UPSERT_MAX_DELAY``), and with them every worker waiting for the frontier
        to drain.
        """
        await self.crawler.signals.send_catch_log_async(flush_requested)

    # -- signals --------------------------------------------------------------------------

    def _answer(self, item: Any) -> str | None:
        if not isinstance(item, BarcodeLookup):
            return None
        self.unanswered.discard(item.sku)
        self._answered.set()
        return item.sku

    def answered(self, item: Any) -> None:
        """An outcome left the pipeline's ``process_item`` (it is stored with its batch)."""
        self._answer(item)

    def abandoned(self, item: Any) -> None:
        """An outcome that will not be stored: stop keeping its entries fresh, so they go
        back to the frontier after the claim timeout and are tried again."""
        sku = self._answer(item)
        if sku is not None and self.in_flight.pop(sku, []):
            self._inc("abandoned")

    def spider_error(self, failure: Failure, response: Any) -> None:
        meta: dict[str, Any] = getattr(response, "meta", None) or {}
        if meta.get("sku") is None:
            return
        sku = str(meta["sku"])
        self.unanswered.discard(sku)
        self._answered.set()
        if self.in_flight.pop(sku, []):
            self._inc("abandoned")

    def stored(self, items: list[Any]) -> None:
        """A batch of outcomes is committed: acknowledge their entries (off the reactor)."""
        done: list[tuple[str, str]] = []
        failed: dict[str, str | None] = {}
        for item in items:
            if not isinstance(item, BarcodeLookup):
                continue
            for entry_id in self.in_flight.pop(item.sku, []):
                done.append((entry_id, item.sku))
            if item.outcome is Outcome.FAILED:
                failed[item.sku] = item.store_id
        if done:
            task = asyncio.ensure_future(self._ack(done, failed))
            self._acks.add(task)
            task.add_done_callback(self._acks.discard)

    async def _ack(self, done: list[tuple[str, str]], failed: dict[str, str | None]) -> None:
        try:
            acked = await asyncio.to_thread(self.frontier.ack, done, failed)
        except FRONTIER_ERRORS as exc:
            # The entries stay pending: another worker takes them back after the claim
            # timeout and finds their outcome stored, so nothing is looked up twice.
            self._inc("ack_errors", len(done))
            logger.warning("Acknowledging %d frontier entries failed: %s", len(done), exc)
            return
        self._inc("acked", acked)

    async def _beat(self) -> None:
        """Keep this worker's unacknowledged entries from being taken back while it lives."""
        every = max(self.claim_timeout / 3, 0.05)
        while True:
            await asyncio.sleep(every)
            ids = [entry_id for ids in self.in_flight.values() for entry_id in ids]
            if not ids:
                continue
            try:
                await asyncio.to_thread(self.frontier.touch, self.consumer, ids)
            except FRONTIER_ERRORS as exc:
                logger.warning("Frontier heartbeat failed: %s", exc)

    async def close(self) -> None:
        """Stop the heartbeat, wait for the last acknowledgements, and give back entries
        never looked up (the crawl stopped early), so other workers take them at once."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        if self._acks:
            await asyncio.gather(*self._acks, return_exceptions=True)
        if self._frontier is None:
            return
        if not self._opened:
            await asyncio.to_thread(self._frontier.close)
            return
        unused = [entry_id for sku in self.unanswered for entry_id in self.in_flight.get(sku, [])]
        try:
            if unused:
                released = await asyncio.to_thread(self.frontier.release, self.consumer, unused)
                self._inc("released", released)
                logger.info("Gave back %d SKUs never looked up to the frontier", released)
            await asyncio.to_thread(self.frontier.forget_consumer, self.consumer)
        except FRONTIER_ERRORS as exc:
            logger.warning(
                "Could not give back %d SKUs to the frontier (%s): they return after the "
                "claim timeout",
                len(unused),
                exc,
            )
        finally:
            await asyncio.to_thread(self.frontier.close)


def _valid_gtin(value: str | None) -> Gtin | None:
    try:
        return parse_gtin(value) if value else None
    except InvalidGtin:
        return None
