"""The barcode pipeline built the way Scrapy builds it (``get_crawler`` +
``build_from_crawler``) against a real database: outcomes stored in batches with the
loader's rules, announced only once committed, and handed on when they cannot be stored."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import pytest
from scrapy.utils.misc import build_from_crawler
from scrapy.utils.test import get_crawler
from sqlalchemy import select

from colesbarcodes.db.engine import make_engine, session_factory
from colesbarcodes.db.models import CompanySku, Lookup, Product
from colesbarcodes.gtin import parse_gtin
from colesbarcodes.items import BarcodeLookup, Outcome
from colesbarcodes.pipelines.barcode_upsert import BarcodeUpsertPipeline
from colesbarcodes.signals import lookups_stored, lookups_unstored

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

MILK = "9300633600082"


def pipeline_for(database_url: str, batch: int, **settings: Any) -> BarcodeUpsertPipeline:
    crawler = get_crawler(
        settings_dict={
            "DATABASE_URL": database_url,
            "COLES_UPSERT_BATCH_SIZE": batch,
            "COLES_UPSERT_MAX_DELAY": 60,
            "COLES_DB_RETRIES": 3,
            "COLES_JOB": "job-1",
            **settings,
        }
    )
    return build_from_crawler(BarcodeUpsertPipeline, crawler)


def heard(pipeline: BarcodeUpsertPipeline, signal: object) -> list[list[BarcodeLookup]]:
    batches: list[list[BarcodeLookup]] = []
    pipeline.crawler.signals.connect(
        lambda items: batches.append(list(items)), signal=signal, weak=False
    )
    return batches


def test_outcomes_are_stored_in_batches_and_announced_once_committed(
    engine: Engine, database_url: str
) -> None:
    pipeline = pipeline_for(database_url, batch=2)
    stored = heard(pipeline, lookups_stored)
    found = BarcodeLookup(sku="1", outcome=Outcome.FOUND, gtin=parse_gtin(MILK), name="Milk")
    items = [
        found,
        BarcodeLookup(sku="2", outcome=Outcome.NOT_FOUND, file="a.jsonl"),
        BarcodeLookup(sku="3", outcome=Outcome.FAILED, reason="HTTP 503 after retries"),
    ]

    async def crawl() -> list[int]:
        await pipeline.open_spider()
        seen = []
        for item in items:
            await pipeline.process_item(item)
            seen.append(len(stored))
        await pipeline.close_spider()
        return seen

    assert asyncio.run(crawl()) == [0, 1, 1]  # the second item filled the batch
    assert [[i.sku for i in batch] for batch in stored] == [["1", "2"], ["3"]]
    assert found.barcode == MILK  # the code recorded is the Gtin's
    with session_factory(engine)() as session:
        rows = session.execute(select(Lookup.sku, Lookup.outcome, Lookup.job, Lookup.barcode))
        assert sorted(tuple(r) for r in rows) == [
            ("1", "found", "job-1", MILK),
            ("2", "not_found", "job-1", None),
            ("3", "failed", "job-1", None),
        ]
        product = session.execute(
            select(Product.barcode, Product.name)
            .join(CompanySku, CompanySku.product_id == Product.id)
            .where(CompanySku.sku == "1")
        ).one()
        assert tuple(product) == (MILK, "Milk")


def test_outcomes_the_database_refuses_are_not_retried_and_are_handed_on(
    postgres_url: str,
) -> None:
    """A value PostgreSQL refuses (a SKU longer than its column) fails the same way every
    time: no retry, no waiting; the batch goes to whoever keeps outcomes for the next run."""
    pipeline = pipeline_for(postgres_url, batch=1)
    unstored = heard(pipeline, lookups_unstored)
    stored = heard(pipeline, lookups_stored)
    refused = BarcodeLookup(sku="9" * 80, outcome=Outcome.NOT_FOUND)

    async def crawl() -> float:
        await pipeline.open_spider()
        started = time.monotonic()
        await pipeline.process_item(refused)
        took = time.monotonic() - started
        await pipeline.process_item(BarcodeLookup(sku="2", outcome=Outcome.NOT_FOUND))
        await pipeline.close_spider()
        return took

    took = asyncio.run(crawl())
    assert took < 1.5  # a retry would have waited 2 s first
    assert stored == []
    assert [[i.sku for i in batch] for batch in unstored] == [["9" * 80, "2"]]
    engine = make_engine(postgres_url)
    with session_factory(engine)() as session:
        assert session.scalar(select(Lookup.sku)) is None
    engine.dispose()


@pytest.mark.parametrize("write_in_thread", [False, True])
def test_a_partial_batch_is_stored_when_the_spider_closes(
    engine: Engine, database_url: str, write_in_thread: bool
) -> None:
    pipeline = pipeline_for(database_url, batch=100, COLES_DB_WRITE_THREAD=write_in_thread)
    stored = heard(pipeline, lookups_stored)

    async def crawl() -> None:
        await pipeline.open_spider()
        await pipeline.process_item(BarcodeLookup(sku="5", outcome=Outcome.NO_BARCODE))
        assert stored == []
        await pipeline.close_spider()

    asyncio.run(crawl())
    assert [[i.sku for i in batch] for batch in stored] == [["5"]]
