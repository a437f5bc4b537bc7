"""A run the monitors failed does not hide barcodes.

A crawl's answers without a barcode (no_barcode, not_found, invalid_barcode) make the next
crawls skip those SKUs as recently checked for ``COLES_RECHECK_DAYS``. When the run that
stored them could not be believed (its drift monitor failed: the site stopped sending the
GTIN; or the site answered it unreadably), the run ledger marks it distrusted, with why, and
the prefill no longer takes those outcomes: the next run asks for the SKUs again.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
import scrapy
from markupsafe import escape
from scrapy.utils.misc import build_from_crawler
from scrapy.utils.test import get_crawler
from sqlalchemy import select

from colesbarcodes.db.engine import session_factory
from colesbarcodes.db.lookups import LookupRow, recent_outcomes, record_lookups
from colesbarcodes.db.models import CrawlRun, Lookup, Product
from colesbarcodes.db.reports import quality_report
from colesbarcodes.db.runs import RunRecord, record_crawl_run
from colesbarcodes.extensions.crawl_monitor import Thresholds, evaluate
from colesbarcodes.extensions.enrichment_files import EnrichmentFiles
from colesbarcodes.extensions.run_ledger import UNREADABLE_STAT, CrawlRunLedger, distrust_reason
from colesbarcodes.gtin import parse_gtin
from colesbarcodes.items import BarcodeLookup, Outcome
from colesbarcodes.middlewares.prefill import PrefillMiddleware
from colesbarcodes.pipelines.barcode_upsert import BarcodeUpsertPipeline
from colesbarcodes.replica.catalogue import Catalogue
from colesbarcodes.replica.process import ReplicaProcess
from loaders.report import render_report
from tests.helpers import run_crawl, run_loader, write_jsonl

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator
    from pathlib import Path

    from sqlalchemy.engine import Engine

MILK = "9300633600082"
HINT = "the site may have changed, run scrapy site-check"


def url_of(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


# --- which runs are distrusted, and why ------------------------------------------------------


def test_a_run_whose_drift_monitor_failed_is_distrusted_with_the_failed_checks() -> None:
    stats: dict[str, Any] = {"coles/outcome/no_barcode": 100}
    verdict = evaluate(stats, Thresholds(), [{"found": 82, "no_barcode": 18}])
    assert verdict.drift_failures == "gtin share 0.00 < 0.41 (half the recent runs' median 0.82)"
    stats["monitor/drift_failures"] = verdict.drift_failures
    assert distrust_reason(stats) == (
        "drift monitor failed: gtin share 0.00 < 0.41 (half the recent runs' median 0.82)"
    )


def test_a_run_the_site_answered_unreadably_is_distrusted_whatever_its_monitors_said() -> None:
    assert distrust_reason({"coles/answers_unreadable": 12}) == (
        "the site answered unreadably 12 times"
    )
    assert distrust_reason({"coles/answers_unreadable": 1}) == "the site answered unreadably 1 time"
    both = {"monitor/drift_failures": "format error share 0.50 > 0.05", UNREADABLE_STAT: 3}
    assert distrust_reason(both) == (
        "drift monitor failed: format error share 0.50 > 0.05; the site answered unreadably 3 times"
    )


def test_a_run_failed_by_its_other_monitors_or_passed_is_trusted() -> None:
    """Too many failed SKUs, bot checks or errors say the crawl got too few answers, not that
    the answers it read mean something else: those SKUs are failed and asked again anyway."""
    stats = {"coles/outcome/found": 50, "coles/outcome/failed": 50}
    verdict = evaluate(stats, Thresholds(), [])
    assert not verdict.passed and verdict.drift_failures == ""
    assert distrust_reason({**stats, "monitor/failures": verdict.failures}) is None
    assert distrust_reason({"coles/answers_unreadable": 0, "monitor/result": "passed"}) is None


# --- the prefill's read ------------------------------------------------------------------------


def record_run(engine: Engine, key: str, reason: str | None, at: datetime) -> None:
    with session_factory(engine).begin() as session:
        record_crawl_run(
            session,
            RunRecord(
                spider="coles_barcodes",
                started_at=at,
                finished_at=at,
                finish_reason="finished" if reason is None else "monitor_failed: ...",
                run_key=key,
                distrust_reason=reason,
            ),
        )


def test_the_prefill_ignores_outcomes_of_distrusted_runs_and_trusts_all_others(
    engine: Engine,
) -> None:
    now = datetime.now(UTC)
    record_run(engine, "a" * 32, None, now - timedelta(days=3))  # passed
    record_run(engine, "b" * 32, "drift monitor failed: gtin share 0.00 < 0.05", now)
    rows = [
        ("1", "no_barcode", "a" * 32, 3),  # a passing run
        ("2", "no_barcode", "b" * 32, 0),  # the distrusted run
        ("3", "not_found", "b" * 32, 0),
        ("4", "invalid_barcode", "b" * 32, 0),
        ("5", "no_barcode", "c" * 32, 0),  # a run killed before its ledger row: trusted
        ("6", "not_found", None, 0),  # stored before runs had keys
        ("7", "no_barcode", "a" * 32, 3),  # trusted three days ago ...
        ("7", "no_barcode", "b" * 32, 0),  # ... still counts after a distrusted answer
    ]
    with session_factory(engine).begin() as session:
        for sku, outcome, key, days in rows:
            record_lookups(
                session,
                [
                    LookupRow(
                        company="coles",
                        sku=sku,
                        outcome=outcome,
                        run_key=key,
                        looked_up_at=now - timedelta(days=days),
                    )
                ],
                [],
                source="test",
            )
    with session_factory(engine)() as session:
        recent = recent_outcomes(session, "coles", list("1234567"), now - timedelta(days=7))
    assert {sku: outcome for sku, (outcome, _) in recent.items()} == {
        "1": "no_barcode",
        "5": "no_barcode",
        "6": "not_found",
        "7": "no_barcode",
    }
    at = recent["7"][1]  # the trusted answer's time (SQLite gives it without a zone)
    assert at.replace(tzinfo=at.tzinfo or UTC) < now - timedelta(days=2)


# --- the components: pipeline, ledger, prefill --------------------------------------------------


def crawl_components(database_url: str) -> tuple[CrawlRunLedger, BarcodeUpsertPipeline]:
    """The run ledger and the pipeline of one crawl, built the way Scrapy builds them."""
    crawler = get_crawler(
        settings_dict={
            "EXTENSIONS": {"colesbarcodes.extensions.run_ledger.CrawlRunLedger": 510},
            "COLES_RUN_LEDGER_ENABLED": True,
            "COLES_LEDGER_CONNECT_TIMEOUT": 10,
            "DATABASE_URL": database_url,
            "COLES_UPSERT_BATCH_SIZE": 100,
            "COLES_UPSERT_MAX_DELAY": 60,
            "COLES_DB_RETRIES": 3,
        }
    )
    ledger = crawler.get_extension(CrawlRunLedger)
    assert ledger is not None
    return ledger, build_from_crawler(BarcodeUpsertPipeline, crawler)


def crawl(
    database_url: str, items: list[BarcodeLookup], stats: dict[str, Any], *, ends: bool = True
) -> str:
    """One crawl's outcomes stored by its pipeline; its stats set; when it ``ends``, the
    ledger records it (a crawl killed first leaves no row). The run's key."""
    ledger, pipeline = crawl_components(database_url)

    async def run() -> None:
        await pipeline.open_spider()
        for item in items:
            await pipeline.process_item(item)
        await pipeline.close_spider()
        assert ledger.crawler.stats is not None
        for key, value in stats.items():
            ledger.crawler.stats.set_value(key, value)
        if ends:
            await ledger.spider_closed("finished")

    asyncio.run(run())
    return ledger.run_key


def prefilled(
    database_url: str,
    inbox: Path,
    skus: list[str],
    claimed: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """What the prefill makes of an inbox file of ``skus``: SKU -> outcome, or "request";
    ``claimed`` is called with the file's claim name once it is claimed."""
    write_jsonl(inbox / "night.jsonl", [{"sku": int(s)} for s in skus])
    crawler = get_crawler(
        settings_dict={
            "EXTENSIONS": {"colesbarcodes.extensions.enrichment_files.EnrichmentFiles": 0},
            "COLES_ENRICHMENT_FILES": True,
            "COLES_ENRICHMENT_INBOX": str(inbox),
            "DATABASE_URL": database_url,
            "PREFILL_ENABLED": True,
            "COLES_RECHECK_DAYS": 7,
        }
    )
    prefill = build_from_crawler(PrefillMiddleware, crawler)
    files = crawler.get_extension(EnrichmentFiles)
    assert files is not None
    job = files.claim_next()  # announced to the prefill by the signal
    assert job is not None
    if claimed is not None:
        claimed(job.name)

    async def start() -> AsyncIterator[Any]:
        for sku in skus:
            yield scrapy.Request(f"http://site.test/{sku}", meta={"sku": sku, "file": job.name})

    async def drain() -> list[Any]:
        return [obj async for obj in prefill.process_start(start())]

    results = asyncio.run(drain())
    prefill.close()
    job.claimed.release()
    return {
        (r.sku if isinstance(r, BarcodeLookup) else r.meta["sku"]): (
            r.outcome.value if isinstance(r, BarcodeLookup) else "request"
        )
        for r in results
    }


def test_a_run_the_site_answered_unreadably_has_its_skus_asked_again_and_a_passing_run_not(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    found = BarcodeLookup(sku="6", outcome=Outcome.FOUND, gtin=parse_gtin(MILK), name="Milk")
    passing = crawl(
        database_url,
        [
            BarcodeLookup(sku="1", outcome=Outcome.NO_BARCODE),
            BarcodeLookup(sku="2", outcome=Outcome.NOT_FOUND),
        ],
        {"coles/answers_unreadable": 0},
    )
    unreadable = crawl(
        database_url,
        [
            BarcodeLookup(sku="3", outcome=Outcome.NO_BARCODE),
            BarcodeLookup(sku="4", outcome=Outcome.NOT_FOUND),
            BarcodeLookup(sku="5", outcome=Outcome.INVALID_BARCODE, raw_barcode="123"),
            found,
        ],
        {"coles/answers_unreadable": 12},
    )
    killed = crawl(
        database_url, [BarcodeLookup(sku="7", outcome=Outcome.NO_BARCODE)], {}, ends=False
    )
    with session_factory(engine)() as session:
        runs = session.execute(
            select(CrawlRun.run_key, CrawlRun.distrust_reason).order_by(CrawlRun.id)
        ).all()
        keys = {sku: key for sku, key in session.execute(select(Lookup.sku, Lookup.run_key))}
    assert [tuple(r) for r in runs] == [
        (passing, None),
        (unreadable, "the site answered unreadably 12 times"),
    ]
    assert keys == {
        "1": passing,
        "2": passing,
        "3": unreadable,
        "4": unreadable,
        "5": unreadable,
        "6": unreadable,
        "7": killed,
    }
    inbox = tmp_path / "enrichment"
    inbox.mkdir()
    assert prefilled(database_url, inbox, [str(s) for s in range(1, 9)]) == {
        "1": "recently_checked",  # the passing run's answers stand
        "2": "recently_checked",
        "3": "request",  # the distrusted run's are asked again
        "4": "request",
        "5": "request",
        "6": "prefilled",  # a barcode the site gave stays a fact
        "7": "recently_checked",  # a killed run's lookups are trusted
        "8": "request",
    }
    with session_factory(engine)() as session:
        (shown,) = [r for r in quality_report(session)["runs"] if r["distrust_reason"]]
    assert (shown["distrust_reason"], shown["asked_again"]) == (
        "the site answered unreadably 12 times",
        3,
    )


def test_a_file_resumed_after_a_distrusted_run_asks_again_for_its_skus_without_barcode(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    """A distrusted run stopped before it finished its file (cancelled on the bad night)
    leaves the file claimed; the run that resumes it asks again for the SKUs that run
    answered without a barcode, and keeps every other stored outcome."""
    now = datetime.now(UTC)
    record_run(engine, "a" * 32, None, now)
    record_run(engine, "b" * 32, "drift monitor failed: gtin share 0.00 < 0.05", now)
    stored = [
        ("1", "no_barcode", "b" * 32),  # the distrusted run's answers without a barcode
        ("2", "not_found", "b" * 32),
        ("3", "failed", "b" * 32),  # not an answer it could misread: kept (retry file)
        ("4", "no_barcode", "a" * 32),  # a trusted run's
    ]

    def earlier_runs(file: str) -> None:
        with session_factory(engine).begin() as session:
            rows = [
                LookupRow(company="coles", sku=sku, outcome=outcome, run_key=key, file=file)
                for sku, outcome, key in stored
            ]
            record_lookups(session, rows, [], source="test")

    inbox = tmp_path / "enrichment"
    inbox.mkdir()
    assert prefilled(database_url, inbox, ["1", "2", "3", "4", "5"], earlier_runs) == {
        "1": "request",
        "2": "request",
        "3": "failed",
        "4": "no_barcode",
        "5": "request",
    }


# --- two nights on the replica -----------------------------------------------------------------

PRODUCTS = 200
SEED = 4


@pytest.fixture
def replica() -> Iterator[ReplicaProcess]:
    with ReplicaProcess(products=PRODUCTS, seed=SEED) as site:
        yield site


def test_a_night_without_gtins_does_not_hide_its_skus_from_the_next_whole_night(
    engine: Engine, replica: ReplicaProcess, enrichment_inbox: Path
) -> None:
    catalogue = Catalogue.generate(PRODUCTS, seed=SEED)
    products = [p for p in catalogue if p.expected_gtin is not None][:40]
    skus = [p.sku for p in products]
    # night 1: the site's records still have the field, null everywhere
    replica.configure(breaks=["gtin-removed"])
    write_jsonl(enrichment_inbox / "monday.jsonl", [{"sku": s} for s in skus])
    broken = run_crawl(url_of(engine), enrichment_inbox, replica.url)
    assert broken.returncode == 3, broken.log[-3000:]
    assert broken.stats["coles/outcome/no_barcode"] == len(skus)
    detail = "gtin share 0.00 < 0.05 (the floor: no recent run to compare with)"
    assert broken.stats["monitor/drift_failures"] == detail
    reason = f"drift monitor failed: {detail}"
    assert f"is distrusted ({reason}): the next run asks again for its 40 SKUs" in broken.log
    # night 2: the site is whole again; every SKU is asked again, none skipped
    replica.configure(breaks=[])
    replica.reset_stats()
    write_jsonl(enrichment_inbox / "tuesday.jsonl", [{"sku": s} for s in skus])
    whole = run_crawl(url_of(engine), enrichment_inbox, replica.url)
    assert whole.returncode == 0, whole.log[-3000:]
    assert whole.stats.get("prefill/recently_checked", 0) == 0
    assert whole.stats["prefill/missing"] == len(skus)
    assert whole.stats["coles/outcome/found"] == len(skus)
    asked = replica.stats()["by_sku_kind"]["graphql"]
    assert {int(s): n for s, n in asked.items()} == dict.fromkeys(skus, 1)
    with session_factory(engine)() as session:
        barcodes = {
            sku: barcode
            for sku, barcode in session.execute(
                select(Lookup.sku, Product.barcode)
                .join(Product, Product.barcode == Lookup.barcode)
                .where(Lookup.outcome == "found")
            )
        }
        runs = list(session.scalars(select(CrawlRun).order_by(CrawlRun.id)))
        page = render_report(quality_report(session))
    assert barcodes == {str(p.sku): p.expected_gtin for p in products}
    # the ledger says which run was distrusted and why; the listing and the report too
    assert [(r.monitor_result, r.distrust_reason) for r in runs] == [
        ("failed", reason),
        ("passed", None),
    ]
    assert all(r.run_key for r in runs)
    listed = run_loader(url_of(engine), "runs", "--json")
    assert listed.exit_code == 0, listed.output
    assert [(r["distrust_reason"], r["asked_again"]) for r in json.loads(listed.output)] == [
        (None, 0),
        (reason, 40),
    ]
    table = run_loader(url_of(engine), "runs")
    assert table.exit_code == 0, table.output
    assert "asked_again" in table.output and reason in table.output
    assert "1 distrusted run" in page
    assert f"{escape(reason)}: 40 SKUs asked again" in page
