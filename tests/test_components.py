"""Crawl components built the way Scrapy builds them (``get_crawler`` +
``build_from_crawler``) and exercised directly: milliseconds, no subprocess. The lookup
batches, the exit pool, and the frontier worker on a real Redis."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import TYPE_CHECKING, Any

import pytest
import scrapy
from scrapy.http import HtmlResponse
from scrapy.utils.misc import build_from_crawler
from scrapy.utils.test import get_crawler

from colesbarcodes.config import ConfigurationError
from colesbarcodes.crawl.exits import ProxyConfigError
from colesbarcodes.crawl.lookups import lookup_request
from colesbarcodes.extensions.site_session import SiteSession
from colesbarcodes.frontier.worker import FrontierWorker
from colesbarcodes.items import Outcome
from colesbarcodes.middlewares.exit_pool import ExitPoolMiddleware
from colesbarcodes.middlewares.lookup_batch import LookupBatchMiddleware
from colesbarcodes.signals import work_unit_taken
from colesbarcodes.site.coles import SiteConfig

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from scrapy.crawler import Crawler

    from colesbarcodes.crawl.sku_source import SkuLine
    from colesbarcodes.frontier.stream import Frontier

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
    key = {"sku": str(sku), "store_id": store, "file": "f.jsonl", "frontier_read": None}
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
    assert crawler.stats.get_value("coles/graphql/document_size") == 2


# --- the exit pool ------------------------------------------------------------------------

PROXIES = "http://127.0.0.2:3128, http://user:secret@127.0.0.3:3128"


def exit_pool(**settings: Any) -> tuple[Crawler, ExitPoolMiddleware]:
    crawler = get_crawler(settings_dict=settings)
    return crawler, build_from_crawler(ExitPoolMiddleware, crawler)


def test_the_exit_pool_sends_every_request_through_the_first_proxy_of_coles_proxies() -> None:
    _, pool = exit_pool(COLES_PROXIES=PROXIES)
    assert [e.label for e in pool.exits] == [
        "proxy 1 (http://127.0.0.2:3128)",
        "proxy 2 (http://127.0.0.3:3128)",
    ]
    request = scrapy.Request("http://site.test/")
    pool.process_request(request)
    assert (request.meta["proxy"], request.meta["cookiejar"]) == ("http://127.0.0.2:3128", 0)


def test_without_proxies_requests_leave_directly() -> None:
    _, pool = exit_pool()
    request = scrapy.Request("http://site.test/")
    pool.process_request(request)
    assert "proxy" not in request.meta
    assert request.meta["coles_exit"] == 0


def test_a_block_page_is_counted_and_the_request_asked_again_through_the_next_exit(
    samples: Path,
) -> None:
    crawler, pool = exit_pool(COLES_PROXIES=PROXIES)
    request = scrapy.Request("http://site.test/")
    pool.process_request(request)
    blocked = HtmlResponse(
        request.url, body=(samples / "incapsula_block_page.html").read_bytes(), request=request
    )
    again = asyncio.run(pool.process_response(request, blocked))
    assert isinstance(again, scrapy.Request)
    assert again.dont_filter and again.meta["coles_block_tries"] == 1
    assert "proxy" not in again.meta  # the exit is chosen afresh
    pool.process_request(again)
    assert (again.meta["proxy"], again.meta["cookiejar"]) == (
        "http://user:secret@127.0.0.3:3128",
        1,
    )
    assert crawler.stats is not None
    assert crawler.stats.get_value("exit/blocked") == 1
    assert crawler.stats.get_value("exit/rotated") == 1
    # An answer that is no block page passes untouched, on the new exit.
    page = HtmlResponse(again.url, body=b"<html>content</html>", request=again)
    assert asyncio.run(pool.process_response(again, page)) is page


def test_a_proxy_that_is_no_forward_proxy_url_is_refused_when_the_pool_is_built() -> None:
    crawler = get_crawler(settings_dict={"COLES_PROXIES": "http://127.0.0.2:3128,socks5://x:1080"})
    with pytest.raises(ProxyConfigError, match=r"^COLES_PROXIES entry 2 \(socks5://x\.\.\.\)"):
        build_from_crawler(ExitPoolMiddleware, crawler)


# --- the frontier worker --------------------------------------------------------------------


def frontier_settings(
    url: str, key: str = "colesbarcodes-test:none", **more: Any
) -> dict[str, Any]:
    """The worker's settings (``get_crawler`` reads none of the project's)."""
    return {
        "EXTENSIONS": {"colesbarcodes.frontier.worker.FrontierWorker": 0},
        "COLES_FRONTIER_WORKER": True,
        "COLES_FRONTIER_URL": url,
        "COLES_FRONTIER_KEY": key,
        "COLES_FRONTIER_BATCH": 50,
        "COLES_FRONTIER_PREFETCH": 100,
        "COLES_FRONTIER_CLAIM_TIMEOUT": 5.0,
        "COLES_FRONTIER_POLL": 0.05,
        "COLES_FRONTIER_MAX_DELIVERIES": 5,
        **more,
    }


def test_the_frontier_worker_is_built_from_its_settings() -> None:
    settings = frontier_settings(
        "redis://127.0.0.1:6379/0",
        COLES_FRONTIER_BATCH=7,
        COLES_FRONTIER_PREFETCH=0,
        COLES_FRONTIER_CLAIM_TIMEOUT=60,
        COLES_JOB="job-3",
        CONCURRENT_REQUESTS=2,
        COLES_GRAPHQL_BATCH=5,
    )
    worker = get_crawler(settings_dict=settings).get_extension(FrontierWorker)
    assert worker is not None
    assert (worker.url, worker.key) == ("redis://127.0.0.1:6379/0", "colesbarcodes-test:none")
    assert (worker.batch, worker.claim_timeout) == (7, 60.0)
    assert worker.prefetch == 2 * 2 * 5  # unset: enough to fill every request slot
    assert worker.consumer.endswith(":job-3")


@pytest.mark.parametrize(
    ("switch", "url"), [(True, ""), (False, "redis://127.0.0.1:6379/0")], ids=["no-url", "off"]
)
def test_the_frontier_worker_is_there_only_with_a_frontier_url_and_its_switch(
    switch: bool, url: str
) -> None:
    crawler = get_crawler(settings_dict={**frontier_settings(url), "COLES_FRONTIER_WORKER": switch})
    assert crawler.get_extension(FrontierWorker) is None


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        (
            "COLES_FRONTIER_URL",
            "http://:s3cret@127.0.0.1:6379/0",
            "the setting COLES_FRONTIER_URL must be a Redis URL, redis://[:password@]host:6379/0, "
            "not 'http://:***@127.0.0.1:6379/0'",
        ),
        ("COLES_FRONTIER_BATCH", "0", "the setting COLES_FRONTIER_BATCH must be a whole number"),
        ("COLES_FRONTIER_POLL", "soon", "the setting COLES_FRONTIER_POLL must be a number above 0"),
        (
            "COLES_FRONTIER_WORKER",
            "maybe",
            "the setting COLES_FRONTIER_WORKER must be true or false",
        ),
    ],
)
def test_the_frontier_worker_refuses_a_wrong_setting_naming_it(
    setting: str, value: str, message: str
) -> None:
    settings = {**frontier_settings("redis://127.0.0.1:6379/0"), setting: value}
    with pytest.raises(ConfigurationError, match=re.escape(message)) as e:
        get_crawler(settings_dict=settings)  # which builds its extensions
    assert "s3cret" not in str(e.value)


def read_lines(worker: FrontierWorker, limit: int = 0) -> list[SkuLine]:
    async def run() -> list[SkuLine]:
        assert await worker.ready()
        try:
            return [line async for line in worker.lines(limit)]
        finally:
            await worker.close()

    return asyncio.run(asyncio.wait_for(run(), timeout=30))


def test_the_frontier_worker_hands_out_the_entries_of_a_real_frontier_stream(
    frontier: Frontier, redis_url: str
) -> None:
    frontier.feed(
        [
            {"sku": "11", "file": "claimed--a.jsonl"},
            {"sku": "12", "store_id": "0601", "file": "claimed--a.jsonl"},
            {"sku": "13", "barcode": "9300633600082", "name": "Milk", "file": "claimed--b.jsonl"},
            {"sku": "14", "barcode": "123", "file": "claimed--b.jsonl"},
        ]
    )
    crawler = get_crawler(
        settings_dict=frontier_settings(redis_url, frontier.key, COLES_FRONTIER_BATCH=3)
    )
    worker = crawler.get_extension(FrontierWorker)
    assert worker is not None
    units: list[Any] = []
    crawler.signals.connect(lambda unit: units.append(unit), signal=work_unit_taken, weak=False)

    lines = read_lines(worker)

    by_sku = {line.sku: line for line in lines}
    assert sorted(by_sku) == ["11", "12", "13", "14"]
    assert (by_sku["12"].store_id, by_sku["12"].file) == ("0601", "claimed--a.jsonl")
    milk = by_sku["13"]
    assert milk.barcode is not None and milk.barcode.code == "9300633600082"
    assert milk.name == "Milk"
    assert by_sku["14"].barcode is None  # not a barcode: asked of the site
    assert all(line.outcome is None for line in lines)
    # Taken three at a time, each batch announced for the prefill under the lines' name.
    assert [sorted(unit.skus) for unit in units] == [["11", "12", "13"], ["14"]]
    assert {line.frontier_read for line in lines} == {unit.name for unit in units}
    assert all(unit.name.startswith(worker.consumer) for unit in units)
    stats = crawler.stats
    assert stats is not None
    assert stats.get_value("frontier/taken") == 4
    # None was answered: closing gives them back for any worker to take.
    assert stats.get_value("frontier/released") == 4
    assert frontier.pending_ids(worker.consumer) == []
    assert sorted(e.sku for e in frontier.take("next", 10)) == ["11", "12", "13", "14"]


def test_the_frontier_worker_settles_an_entry_handed_out_too_often_as_failed(
    frontier: Frontier, redis_url: str
) -> None:
    frontier.feed([{"sku": "21", "file": "claimed--a.jsonl"}])
    frontier.take("dead-worker", 1)
    time.sleep(0.3)
    settings = frontier_settings(
        redis_url,
        frontier.key,
        COLES_FRONTIER_CLAIM_TIMEOUT=0.2,
        COLES_FRONTIER_MAX_DELIVERIES=1,
    )
    crawler = get_crawler(settings_dict=settings)
    worker = crawler.get_extension(FrontierWorker)
    assert worker is not None

    (line,) = read_lines(worker)

    assert (line.sku, line.outcome) == ("21", Outcome.FAILED)
    assert line.reason == "handed out 1 times without a stored outcome"
    assert crawler.stats is not None
    assert crawler.stats.get_value("frontier/reclaimed") == 1
    assert crawler.stats.get_value("frontier/given_up") == 1


def test_the_frontier_worker_takes_no_more_than_the_limit(
    frontier: Frontier, redis_url: str
) -> None:
    frontier.feed([{"sku": str(sku)} for sku in range(30, 40)])
    crawler = get_crawler(settings_dict=frontier_settings(redis_url, frontier.key))
    worker = crawler.get_extension(FrontierWorker)
    assert worker is not None
    assert [line.sku for line in read_lines(worker, limit=4)] == ["30", "31", "32", "33"]
    assert frontier.status().waiting == 10  # the four were given back when it closed
