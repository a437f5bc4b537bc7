"""The enrichment inbox files' life in one component, built the way Scrapy builds it
(``get_crawler``), driven by the signals the crawl sends, against real inbox files; and
the prefill answering from a real database for the units it is told about."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import orjson
import scrapy
from scrapy import signals
from scrapy.utils.misc import build_from_crawler
from scrapy.utils.test import get_crawler

from colesbarcodes.db.engine import session_factory
from colesbarcodes.db.lookups import LookupRow, record_lookups
from colesbarcodes.extensions.enrichment_files import EnrichmentFiles
from colesbarcodes.gtin import parse_gtin
from colesbarcodes.inbox.claims import Inbox
from colesbarcodes.inbox.enrichment import EnrichmentInbox
from colesbarcodes.inbox.lines import ProductLine
from colesbarcodes.items import BarcodeLookup, Outcome
from colesbarcodes.middlewares.prefill import PrefillMiddleware
from colesbarcodes.signals import lookups_stored, lookups_unstored, work_unit_taken
from tests.helpers import write_jsonl

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from scrapy.crawler import Crawler
    from sqlalchemy.engine import Engine

    from colesbarcodes.crawl.sku_source import SkuLine

MILK = "9300633600082"


def files_of(inbox: Path, enabled: bool = True) -> tuple[Crawler, EnrichmentFiles]:
    crawler = get_crawler(
        settings_dict={
            "EXTENSIONS": {"colesbarcodes.extensions.enrichment_files.EnrichmentFiles": 0},
            "COLES_ENRICHMENT_FILES": enabled,
            "COLES_ENRICHMENT_INBOX": str(inbox),
        }
    )
    extension = crawler.get_extension(EnrichmentFiles)
    assert extension is not None
    return crawler, extension


def outcome(sku: str, file: str, result: Outcome = Outcome.FOUND) -> BarcodeLookup:
    return BarcodeLookup(sku=sku, outcome=result, store_id="0584", file=file)


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_the_extension_is_there_only_for_a_spider_that_asks_for_it(tmp_path: Path) -> None:
    crawler = get_crawler(
        settings_dict={
            "EXTENSIONS": {"colesbarcodes.extensions.enrichment_files.EnrichmentFiles": 0}
        }
    )
    assert crawler.get_extension(EnrichmentFiles) is None


def test_a_claimed_file_is_announced_and_finished_once_every_sku_has_a_stored_outcome(
    tmp_path: Path,
) -> None:
    inbox = tmp_path / "enrichment"
    (inbox).mkdir()
    write_jsonl(inbox / "a.jsonl", [{"sku": 1, "store_id": "0584"}, {"sku": 2}, {"sku": 3}])
    crawler, files = files_of(inbox)
    announced: list[Any] = []
    crawler.signals.connect(lambda unit: announced.append(unit), signal=work_unit_taken, weak=False)

    job = files.claim_next()
    assert job is not None and set(job.skus) == {"1", "2", "3"}
    assert announced == [job] and job.file == job.name
    assert files.claim_next() is None  # one file waited

    crawler.signals.send_catch_log(
        lookups_stored, items=[outcome("1", job.name), outcome("2", job.name)]
    )
    assert list((inbox / "processing").iterdir()) != []  # SKU 3 has no outcome yet
    crawler.signals.send_catch_log(
        lookups_stored, items=[outcome("3", job.name, Outcome.FAILED), outcome("9", "other")]
    )
    assert list((inbox / "processing").iterdir()) == []
    (retry,) = (p for p in inbox.glob("retry-*.jsonl"))
    assert jsonl(retry) == [{"sku": 3, "store_id": None}]
    assert crawler.stats is not None
    assert crawler.stats.get_value("coles/files_finished") == 1


def test_a_file_without_a_sku_is_finished_when_claimed_not_resumed_forever(
    tmp_path: Path,
) -> None:
    """An empty file, or one whose every line is quarantined, gets no outcome that could
    finish it later: it is finished at once and the next file is taken."""
    inbox = tmp_path / "enrichment"
    inbox.mkdir()
    write_jsonl(inbox / "a-empty.jsonl", [], mtime=1_000)
    write_jsonl(inbox / "b-bad.jsonl", ["not json", '{"sku": "abc"}'], mtime=2_000)
    write_jsonl(inbox / "c.jsonl", [{"sku": 7}], mtime=3_000)
    crawler, files = files_of(inbox)
    job = files.claim_next()
    assert job is not None and job.claimed.original_name == "c.jsonl"
    assert not (inbox / "a-empty.jsonl").exists() and not (inbox / "b-bad.jsonl").exists()
    assert [p.name for p in (inbox / "processing").iterdir()] == [job.name]
    assert crawler.stats is not None
    assert crawler.stats.get_value("coles/files_finished") == 2
    crawler.signals.send_catch_log(signals.spider_closed, spider=None, reason="finished")
    again = EnrichmentInbox(inbox).claim_next()
    assert again is not None and again.claimed.original_name == "c.jsonl"  # only c is left
    again.claimed.release()


def test_the_inbox_hands_out_the_skus_of_its_files_oldest_first_each_once(
    tmp_path: Path,
) -> None:
    inbox = tmp_path / "enrichment"
    inbox.mkdir()
    write_jsonl(inbox / "a.jsonl", [{"sku": 1, "store_id": "0601"}, {"sku": 2}], mtime=1_000)
    write_jsonl(
        inbox / "b.jsonl", [{"sku": 2}, {"sku": 3, "barcode": MILK, "name": "Milk"}], mtime=2_000
    )
    _, files = files_of(inbox)

    async def read(limit: int = 0) -> list[SkuLine]:
        assert await files.ready()
        return [line async for line in files.lines(limit)]

    lines = asyncio.run(read())
    assert [(line.sku, line.outcome) for line in lines] == [
        ("1", None),
        ("2", None),
        ("2", Outcome.DUPLICATE),  # looked up for a.jsonl already
        ("3", None),
    ]
    assert lines[0].store_id == "0601" and lines[0].file == lines[1].file != lines[2].file
    assert lines[3].barcode == parse_gtin(MILK) and lines[3].name == "Milk"
    assert not asyncio.run(files.ready())  # both files claimed: nothing waits


def test_the_inbox_stops_handing_out_skus_at_the_limit(tmp_path: Path) -> None:
    inbox = tmp_path / "enrichment"
    inbox.mkdir()
    write_jsonl(inbox / "a.jsonl", [{"sku": 1}, {"sku": 2}], mtime=1_000)
    write_jsonl(inbox / "b.jsonl", [{"sku": 3}, {"sku": 4}], mtime=2_000)
    _, files = files_of(inbox)

    async def read() -> list[str]:
        return [line.sku async for line in files.lines(limit=3)]

    assert asyncio.run(read()) == ["1", "2", "3"]


def test_outcomes_the_pipeline_could_not_store_are_spilled_to_the_inbox(tmp_path: Path) -> None:
    inbox = tmp_path / "enrichment"
    crawler, _ = files_of(inbox)
    found = outcome("1", "a.jsonl")
    found.gtin, found.barcode, found.name = parse_gtin(MILK), MILK, "Milk"
    already = outcome("2", "a.jsonl")
    already.stored = True
    crawler.signals.send_catch_log(lookups_unstored, items=[found, already])
    (spill,) = inbox.glob("spill-*.jsonl")
    rows = jsonl(spill)
    assert [(r["sku"], r["barcode"], r["name"]) for r in rows] == [(1, MILK, "Milk")]
    assert not list(inbox.glob("*.part"))


def test_unfinished_files_stay_in_processing_and_are_released_when_the_spider_closes(
    tmp_path: Path,
) -> None:
    inbox = tmp_path / "enrichment"
    inbox.mkdir()
    write_jsonl(inbox / "a.jsonl", [{"sku": 1}, {"sku": 2}])
    crawler, files = files_of(inbox)
    job = files.claim_next()
    assert job is not None
    crawler.signals.send_catch_log(lookups_stored, items=[outcome("1", job.name)])
    assert EnrichmentInbox(inbox).claim_next() is None  # still held by this crawl

    crawler.signals.send_catch_log(signals.spider_closed, spider=None, reason="finished")
    again = EnrichmentInbox(inbox).claim_next()  # the next run resumes it
    assert again is not None and again.name == job.name and set(again.skus) == {"1", "2"}
    again.claimed.release()
    assert Inbox(inbox).has_work()


def test_the_prefill_answers_from_the_database_for_the_unit_it_was_told_about(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    line = ProductLine(company="coles", sku="1", name="Milk", barcode=parse_gtin(MILK))
    with session_factory(engine).begin() as session:
        record_lookups(
            session,
            [LookupRow(company="coles", sku="2", outcome="not_found", file="a.jsonl")],
            [(1, line)],
            source="test",
        )
    inbox = tmp_path / "enrichment"
    inbox.mkdir()
    write_jsonl(inbox / "a.jsonl", [{"sku": 1}, {"sku": 2}, {"sku": 3}])
    crawler = get_crawler(
        settings_dict={
            "EXTENSIONS": {"colesbarcodes.extensions.enrichment_files.EnrichmentFiles": 0},
            "COLES_ENRICHMENT_FILES": True,
            "COLES_ENRICHMENT_INBOX": str(inbox),
            "DATABASE_URL": database_url,
            "PREFILL_ENABLED": True,
            "COLES_RECHECK_DAYS": 0,
        }
    )
    prefill = build_from_crawler(PrefillMiddleware, crawler)
    files = crawler.get_extension(EnrichmentFiles)
    assert files is not None
    job = files.claim_next()  # announced to the prefill by the signal
    assert job is not None
    # the earlier run's outcome for SKU 2 was stored under this claim's name
    with session_factory(engine).begin() as session:
        record_lookups(
            session,
            [LookupRow(company="coles", sku="2", outcome="not_found", file=job.name)],
            [],
            source="test",
        )

    async def start() -> AsyncIterator[Any]:
        for sku in ("1", "2", "3"):
            yield scrapy.Request(
                f"http://site.test/{sku}", meta={"sku": sku, "file": job.name, "store_id": None}
            )

    async def drain() -> list[Any]:
        return [obj async for obj in prefill.process_start(start())]

    results = asyncio.run(drain())
    prefill.close()
    kinds = {
        (r.sku if isinstance(r, BarcodeLookup) else r.meta["sku"]): (
            r.outcome if isinstance(r, BarcodeLookup) else "request"
        )
        for r in results
    }
    assert kinds == {"1": Outcome.PREFILLED, "2": Outcome.NOT_FOUND, "3": "request"}
    stored = next(r for r in results if isinstance(r, BarcodeLookup) and r.sku == "2")
    assert stored.stored and stored.company == "coles"
    job.claimed.release()
