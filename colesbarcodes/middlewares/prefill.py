"""The prefill: SKUs whose barcode (or outcome) the database knows are answered before
any request leaves."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import scrapy
from scrapy import signals
from scrapy.exceptions import NotConfigured
from scrapy.spidermiddlewares.base import BaseSpiderMiddleware

from colesbarcodes.config import setting_bool, setting_float, setting_str
from colesbarcodes.db.engine import database_url, make_engine, with_retries
from colesbarcodes.db.lookups import (
    known_barcodes,
    recent_outcomes,
    stored_for_entries,
    stored_for_file,
)
from colesbarcodes.items import BarcodeLookup, Outcome
from colesbarcodes.signals import work_unit_taken

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping
    from typing import Self

    from scrapy.crawler import Crawler
    from scrapy.settings import BaseSettings
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session

__all__ = ["PrefillConfig", "PrefillMiddleware", "WorkUnit"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PrefillConfig:
    """The prefill's settings: ``DATABASE_URL`` (where the known barcodes are) and
    ``COLES_RECHECK_DAYS`` (SKUs without a barcode are asked for again after this long)."""

    database_url: str = field(default_factory=database_url)
    recheck: timedelta = timedelta(days=7.0)

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> Self:
        return cls(
            database_url=setting_str(settings, "DATABASE_URL"),
            recheck=timedelta(days=setting_float(settings, "COLES_RECHECK_DAYS")),
        )


class _FileKnowledge:
    """What the database knows about the SKUs of one inbox file, loaded in bulk."""

    def __init__(
        self,
        company: str,
        known: dict[str, str],
        recent: dict[str, tuple[str, datetime]],
        stored: dict[str, str],
    ) -> None:
        self.company = company
        self.known, self.recent, self.stored = known, recent, stored


class WorkUnit(Protocol):
    """A work unit: SKUs a crawl takes together and accounts for as a whole (an enrichment
    file, or one frontier read). Announced with the ``work_unit_taken`` signal; the prefill loads what the
    database knows about them in one go."""

    @property
    def name(self) -> str: ...  # what requests and items name it by (meta file or frontier_read)

    @property
    def company(self) -> str: ...

    @property
    def label(self) -> str: ...  # for the log

    @property
    def log_level(self) -> int: ...

    @property
    def skus(self) -> Mapping[str, Any]:
        """Its SKUs; for a frontier read, each mapped to the inbox file it came from."""
        ...

    @property
    def file(self) -> str | None:
        """The inbox file all its SKUs come from (None: ``skus`` says, SKU by SKU)."""
        ...


class PrefillMiddleware(BaseSpiderMiddleware):
    """Answers SKUs whose barcode is already known before any request leaves.

    For each unit of SKUs (an enrichment file, or a frontier read: meta ``frontier_read`` or ``file``,
    announced by the ``work_unit_taken`` signal), one bulk query loads the barcodes of exactly
    that unit's SKUs (not one query per SKU, not every product of the company), plus the
    SKUs that had no barcode within the re-check age and the SKUs whose outcome an earlier
    run already stored for it (a resumed file; a frontier SKU taken back from a dead
    worker). Those SKUs become items (marked prefilled) instead of requests. Stats:
    ``prefill/loaded``, ``prefill/skipped``, ``prefill/missing``,
    ``prefill/recently_checked``, ``prefill/resumed``.
    """

    def __init__(self, crawler: Crawler, config: PrefillConfig) -> None:
        super().__init__(crawler)
        self.config = config
        self.engine: Engine | None = None
        self.current: tuple[str, _FileKnowledge] | None = None
        self.units: dict[str, WorkUnit] = {}  # taken, not loaded yet

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        if not setting_bool(crawler.settings, "PREFILL_ENABLED"):
            raise NotConfigured
        middleware = cls(crawler, PrefillConfig.from_settings(crawler.settings))
        crawler.signals.connect(middleware.close, signal=signals.spider_closed)
        crawler.signals.connect(middleware.unit_taken, signal=work_unit_taken)
        return middleware

    def unit_taken(self, unit: WorkUnit) -> None:
        self.units[unit.name] = unit

    def _load(self, unit: WorkUnit) -> _FileKnowledge:
        if self.engine is None:
            self.engine = make_engine(self.config.database_url)
        skus = list(unit.skus)
        recheck = self.config.recheck
        since = datetime.now(UTC) - recheck
        company = unit.company

        def load(session: Session) -> _FileKnowledge:
            return _FileKnowledge(
                company,
                known_barcodes(session, company, skus),
                recent_outcomes(session, company, skus, since) if recheck else {},
                # what an earlier run (or a dead worker) already stored for this unit
                stored_for_file(session, unit.file)
                if unit.file is not None
                else stored_for_entries(session, company, unit.skus),
            )

        return with_retries(self.engine, load, what="Loading the prefill map")

    async def _knowledge(self, key: str) -> _FileKnowledge:
        if self.current is None or self.current[0] != key:
            unit = self.units.pop(key)
            started = time.monotonic()
            knowledge = await asyncio.to_thread(self._load, unit)
            self.current = (key, knowledge)
            self.crawler.stats.inc_value("prefill/loaded", len(knowledge.known))
            logger.log(
                unit.log_level,
                "Prefill for %s: %d of %d SKUs known, %d recently without barcode, "
                "%d already stored (%.2fs)",
                unit.label,
                len(knowledge.known),
                len(unit.skus),
                len(knowledge.recent),
                len(knowledge.stored),
                time.monotonic() - started,
            )
        return self.current[1]

    async def process_start(self, start: AsyncIterator[Any]) -> AsyncIterator[Any]:
        stats = self.crawler.stats
        if stats is None:
            raise RuntimeError("the crawler has no stats collector")
        async for obj in start:
            if isinstance(obj, scrapy.Request):
                key, sku = (
                    obj.meta.get("frontier_read") or obj.meta.get("file"),
                    obj.meta.get("sku"),
                )
            elif isinstance(obj, BarcodeLookup):
                key, sku = obj.frontier_read or obj.file, obj.sku
            else:
                key = sku = None
            if key is None or sku is None:
                yield obj
                continue
            knowledge = await self._knowledge(key)
            sku = str(sku)
            if sku in knowledge.stored:
                stats.inc_value("prefill/resumed")
                if isinstance(obj, BarcodeLookup):
                    obj.stored = True
                    yield obj
                else:
                    yield self._item(obj, knowledge, Outcome(knowledge.stored[sku]), stored=True)
                continue
            if not isinstance(obj, scrapy.Request):
                yield obj
                continue
            if sku in knowledge.known:
                stats.inc_value("prefill/skipped")
                yield self._item(obj, knowledge, Outcome.PREFILLED, barcode=knowledge.known[sku])
            elif sku in knowledge.recent:
                outcome, at = knowledge.recent[sku]
                stats.inc_value("prefill/recently_checked")
                yield self._item(
                    obj,
                    knowledge,
                    Outcome.RECENTLY_CHECKED,
                    reason=f"{outcome} at {at:%Y-%m-%d %H:%M}",
                )
            else:
                stats.inc_value("prefill/missing")
                yield obj

    @staticmethod
    def _item(
        request: scrapy.Request, knowledge: _FileKnowledge, outcome: Outcome, **fields: Any
    ) -> BarcodeLookup:
        return BarcodeLookup(
            sku=str(request.meta["sku"]),
            outcome=outcome,
            company=knowledge.company,
            store_id=request.meta.get("store_id"),
            file=request.meta.get("file"),
            frontier_read=request.meta.get("frontier_read"),
            **fields,
        )

    def close(self) -> None:
        if self.engine is not None:
            self.engine.dispose()
