"""Crawl components built the way Scrapy builds them (``get_crawler`` +
``build_from_crawler``) and exercised directly: milliseconds, no subprocess."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import scrapy
from scrapy.utils.misc import build_from_crawler
from scrapy.utils.test import get_crawler

from colesbarcodes.extensions.site_session import SiteSession
from colesbarcodes.middlewares.lookup_batch import LookupBatchMiddleware
from colesbarcodes.site.coles import SiteConfig
from colesbarcodes.site.source import lookup_request

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from scrapy.crawler import Crawler

CONFIG = SiteConfig("build", "0" * 32, "http://site.test/api/graphql")


def crawler_with(batch: int, wait: float = 0.05) -> Crawler:
    crawler = get_crawler(
        settings_dict={
            "EXTENSIONS": {"colesbarcodes.extensions.site_session.SiteSession": 0},
            "COLES_GRAPHQL_BATCH": batch,
            "COLES_GRAPHQL_BATCH_WAIT": wait,
        }
    )
    session = crawler.get_extension(SiteSession)
    assert session is not None
    session.config = CONFIG
    return crawler


def one(sku: int, store: str = "0584") -> scrapy.Request:
    key = {"sku": str(sku), "store_id": store, "file": "f.jsonl", "batch": None}
    return lookup_request(CONFIG, "http://site.test", [key], {"sku": str(sku)})


def skus_of(request: scrapy.Request) -> list[str]:
    return [key["sku"] for key in request.meta["lookups"]]


def variables(request: scrapy.Request) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(request.body)
    variables: dict[str, Any] = body["variables"]
    return variables


async def drain(middleware: LookupBatchMiddleware, source: AsyncIterator[Any]) -> list[Any]:
    return [obj async for obj in middleware.process_start(source)]


def test_lookups_of_one_store_become_documents_of_the_batch_size() -> None:
    middleware = build_from_crawler(LookupBatchMiddleware, crawler_with(batch=4))

    async def start() -> AsyncIterator[Any]:
        for sku in range(1, 11):
            yield one(sku)

    out = asyncio.run(drain(middleware, start()))
    assert [skus_of(r) for r in out] == [["1", "2", "3", "4"], ["5", "6", "7", "8"], ["9", "10"]]
    assert variables(out[0]) == {"storeId": "COL:0584", "p0": "1", "p1": "2", "p2": "3", "p3": "4"}


def test_stores_are_never_mixed_in_one_document_and_items_pass_at_once() -> None:
    middleware = build_from_crawler(LookupBatchMiddleware, crawler_with(batch=3))
    item = {"not": "a request"}

    async def start() -> AsyncIterator[Any]:
        yield one(1, "0584")
        yield one(2, "0601")
        yield item
        yield one(3, "0584")
        yield one(4, "0584")

    out = asyncio.run(drain(middleware, start()))
    assert out[0] is item  # not held back behind the batches
    documents = [r for r in out if isinstance(r, scrapy.Request)]
    assert sorted(skus_of(r) for r in documents) == [["1", "3", "4"], ["2"]]
    assert {variables(r)["storeId"] for r in documents} == {"COL:0584", "COL:0601"}


def test_a_partial_batch_leaves_when_the_start_stream_pauses() -> None:
    """A frontier waiting for acknowledgements must never wait for its own SKUs."""
    middleware = build_from_crawler(LookupBatchMiddleware, crawler_with(batch=10, wait=0.05))
    seen: list[list[str]] = []

    async def start() -> AsyncIterator[Any]:
        yield one(1)
        yield one(2)
        while not seen:  # the next SKUs come only once the first ones were sent
            await asyncio.sleep(0.01)
        yield one(3)

    async def run() -> None:
        async for request in middleware.process_start(start()):
            seen.append(skus_of(request))

    asyncio.run(asyncio.wait_for(run(), timeout=5))
    assert seen == [["1", "2"], ["3"]]


def test_a_lowered_batch_size_applies_to_the_next_documents() -> None:
    crawler = crawler_with(batch=8)
    middleware = build_from_crawler(LookupBatchMiddleware, crawler)
    session = crawler.get_extension(SiteSession)
    assert session is not None
    assert session.shrink_batch(8) == 4
    assert session.shrink_batch(4) == 2

    async def start() -> AsyncIterator[Any]:
        for sku in range(1, 6):
            yield one(sku)

    out = asyncio.run(drain(middleware, start()))
    assert [len(skus_of(r)) for r in out] == [2, 2, 1]
    assert crawler.stats is not None
    assert crawler.stats.get_value("coles/graphql/batch_size") == 2
