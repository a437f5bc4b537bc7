"""The drift monitor: a site that changed under a crawl that still runs fails the crawl.

Two checks join the crawl monitors. The GTIN share (of the product records the site
answered, the share that carried a GTIN) must not fall below half the median of the recent
runs in the run ledger, nor ever below a floor; the share of answers whose format could not
be read must stay small. Their failure tells the operator to run ``scrapy site-check``.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest
from scrapy.settings import Settings
from scrapy.utils.test import get_crawler
from sqlalchemy import select

from colesbarcodes import settings as project_settings
from colesbarcodes.db.engine import session_factory
from colesbarcodes.db.models import CrawlRun
from colesbarcodes.db.reports import quality_report
from colesbarcodes.db.runs import RunRecord, recent_crawl_outcomes, record_crawl_run
from colesbarcodes.extensions.crawl_monitor import CrawlMonitor, Thresholds, evaluate, gtin_baseline
from colesbarcodes.replica.catalogue import Catalogue
from colesbarcodes.replica.process import ReplicaProcess
from colesbarcodes.spiders.coles_barcodes import ColesBarcodesSpider
from loaders.report import render_report
from tests.helpers import run_crawl, run_loader, write_jsonl

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from sqlalchemy.engine import Engine

HINT = "the site may have changed, run scrapy site-check"


def outcomes(found: int = 0, no_barcode: int = 0, **more: int) -> dict[str, int]:
    """SKUs per outcome, as the run ledger keeps them."""
    return {"found": found, "no_barcode": no_barcode, **more}


def stats_of(found: int = 0, no_barcode: int = 0, **more: int) -> dict[str, int]:
    """A crawl's stats with these outcomes (``coles/outcome/<outcome>``)."""
    return {f"coles/outcome/{k}": v for k, v in outcomes(found, no_barcode, **more).items()}


def gtin_check(verdict: Any) -> Any:
    (check,) = [c for c in verdict.checks if c.name == "gtin share"]
    return check


NORMAL = [outcomes(90, 10), outcomes(88, 12), outcomes(92, 8), outcomes(90, 10), outcomes(85, 15)]


# --- the GTIN share, with and without history ------------------------------------------------


def test_a_gtin_share_collapsed_against_the_recent_runs_fails_and_names_site_check() -> None:
    verdict = evaluate(stats_of(0, 100), Thresholds(), NORMAL)
    assert not verdict.passed
    assert verdict.failures == f"gtin share 0.00 < 0.45 (half the recent runs' median 0.90): {HINT}"
    check = gtin_check(verdict)
    assert (check.value, check.limit) == (0.0, 0.45)
    assert dict(check.extra) == {
        "gtin_share_expected": 0.45,
        "gtin_history_runs": 5,
        "gtin_share_median": 0.9,
    }


def test_normal_variation_between_runs_passes() -> None:
    for share in (95, 80, 60, 46):
        verdict = evaluate(stats_of(share, 100 - share), Thresholds(), NORMAL)
        assert verdict.passed, verdict.failures
    assert str(gtin_check(evaluate(stats_of(60, 40), Thresholds(), NORMAL))) == (
        "gtin share 0.60 >= 0.45 (half the recent runs' median 0.90)"
    )
    assert not evaluate(stats_of(44, 56), Thresholds(), NORMAL).passed  # just under half


def test_the_share_counts_the_records_the_site_answered_and_an_invalid_gtin_is_a_gtin() -> None:
    # not_found and failed SKUs have no record; invalid_barcode carried a GTIN
    stats = stats_of(30, 20, invalid_barcode=50, not_found=500, failed=10)
    check = gtin_check(evaluate(stats, Thresholds(max_failed_share=1.0), NORMAL))
    assert check.value == 0.8
    assert check.passed


def test_a_run_with_too_few_records_is_not_judged() -> None:
    stats = stats_of(0, 19, not_found=200, prefilled=5000)
    verdict = evaluate(stats, Thresholds(), NORMAL)
    assert verdict.passed
    assert str(gtin_check(verdict)) == "gtin share not judged (19 records < 20)"
    assert not evaluate(stats_of(0, 20), Thresholds(), NORMAL).passed  # 20 is enough
    assert evaluate(stats_of(0, 20), Thresholds(gtin_min_records=21), NORMAL).passed


def test_without_history_the_floor_is_the_limit() -> None:
    verdict = evaluate(stats_of(1, 99), Thresholds(), [])
    assert verdict.failures == (
        f"gtin share 0.01 < 0.05 (the floor: no recent run to compare with): {HINT}"
    )
    assert dict(gtin_check(verdict).extra) == {"gtin_share_expected": 0.05, "gtin_history_runs": 0}
    # a share the recent runs would fail is fine with nothing to compare it with
    assert evaluate(stats_of(10, 90), Thresholds(), []).passed
    assert not evaluate(stats_of(10, 90), Thresholds(), NORMAL).passed
    # runs too small to count are no history
    assert evaluate(stats_of(10, 90), Thresholds(), [outcomes(19, 0)] * 5).passed


def test_the_history_is_the_latest_runs_with_enough_records() -> None:
    history = [
        outcomes(0, 5),  # newest: too small to count
        *[outcomes(20, 80)] * 5,  # the last five that count: share 0.2
        *[outcomes(90, 10)] * 5,  # older, no longer compared with
    ]
    assert gtin_baseline(history, Thresholds()) == [0.2] * 5
    assert gtin_baseline(history, Thresholds(gtin_history=2)) == [0.2] * 2
    assert evaluate(stats_of(15, 85), Thresholds(), history).passed  # 0.15 >= 0.10
    assert not evaluate(stats_of(15, 85), Thresholds(gtin_history=10), history).passed
    assert evaluate(stats_of(60, 40), Thresholds(gtin_drop=0.6), NORMAL).passed
    assert evaluate(stats_of(50, 50), Thresholds(gtin_drop=0.6), NORMAL).failures == (
        f"gtin share 0.50 < 0.54 (0.6 x the recent runs' median 0.90): {HINT}"
    )


def test_a_site_broken_for_several_runs_never_becomes_the_norm() -> None:
    broken = [outcomes(0, 100)] * 5
    verdict = evaluate(stats_of(0, 100), Thresholds(), broken)
    assert verdict.failures == (
        f"gtin share 0.00 < 0.05 (the floor; the recent runs' median is 0.00): {HINT}"
    )


def test_a_spider_that_looks_nothing_up_has_no_gtin_check() -> None:
    verdict = evaluate({}, Thresholds())  # the listing crawl: no history read
    assert verdict.passed
    assert "gtin share" not in {check.name for check in verdict.checks}
    assert evaluate(stats_of(0, 100), Thresholds()).passed


# --- the format error share --------------------------------------------------------------------


def test_too_many_answers_the_crawl_cannot_read_fail_and_name_site_check() -> None:
    stats = {"coles/answers_read": 100, "coles/site_format_errors": 6}
    verdict = evaluate(stats, Thresholds())
    assert verdict.failures == f"format error share 0.06 > 0.05: {HINT}"
    assert evaluate({**stats, "coles/site_format_errors": 5}, Thresholds()).passed
    assert evaluate(stats, Thresholds(max_format_error_share=0.1)).passed
    assert evaluate({"coles/site_format_errors": 3}, Thresholds()).failures.startswith(
        "format error share 1.00 > 0.05"
    )


def test_the_hint_follows_the_drift_checks_once() -> None:
    stats = {
        **stats_of(0, 80, failed=20),
        "coles/answers_read": 100,
        "coles/site_format_errors": 50,
    }
    verdict = evaluate(stats, Thresholds(max_failed_share=0.1), NORMAL)
    assert verdict.failures == (
        "failed share 0.20 > 0.10; gtin share 0.00 < 0.45 (half the recent runs' median 0.90); "
        f"format error share 0.50 > 0.05: {HINT}"
    )
    assert evaluate(stats_of(90, 10, failed=50), Thresholds(), NORMAL).failures == (
        "failed share 0.33 > 0.25"  # no drift: no hint
    )


def test_the_project_settings_are_the_documented_defaults() -> None:
    settings = Settings()
    settings.setmodule(project_settings)
    assert Thresholds.from_settings(settings) == Thresholds()
    assert Thresholds() == Thresholds(
        gtin_drop=0.5,
        gtin_history=5,
        gtin_min_records=20,
        min_gtin_share=0.05,
        max_format_error_share=0.05,
    )


# --- the history, from the run ledger ----------------------------------------------------------


def url_of(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def record_runs(engine: Engine, runs: list[tuple[str, dict[str, int]]]) -> None:
    """Runs recorded as the ledger records them, oldest first, a day apart."""
    start = datetime.now(UTC) - timedelta(days=len(runs))
    with session_factory(engine).begin() as session:
        for day, (spider, counts) in enumerate(runs):
            at = start + timedelta(days=day)
            record_crawl_run(
                session,
                RunRecord(
                    spider=spider,
                    started_at=at,
                    finished_at=at + timedelta(minutes=30),
                    finish_reason="finished",
                    monitor_result="passed",
                    outcomes=counts,
                    stats={f"coles/outcome/{k}": v for k, v in counts.items()},
                ),
            )


MONITOR_SETTINGS = {
    k: getattr(project_settings, k)
    for k in dir(project_settings)
    if k.startswith(("COLES_MONITOR_", "COLES_LEDGER_"))
}


def monitor_for(database_url: str, **settings: Any) -> CrawlMonitor:
    """The monitor as the project's settings make it, on ``database_url``."""
    crawler = get_crawler(
        settings_dict={**MONITOR_SETTINGS, "DATABASE_URL": database_url, **settings}
    )
    return CrawlMonitor.from_crawler(crawler)


def test_the_history_is_read_from_the_run_ledger(engine: Engine) -> None:
    record_runs(
        engine,
        [
            ("coles_barcodes", outcomes(90, 10, not_found=3)),  # oldest
            ("coles_barcodes", outcomes(70, 30, prefilled=400)),
            ("coles_barcodes", outcomes(1, 2)),  # a small retry run
            ("coles_products", {}),  # another spider, newest
        ],
    )
    with session_factory(engine)() as session:
        assert recent_crawl_outcomes(session, "coles_barcodes") == [
            outcomes(1, 2),
            outcomes(70, 30, prefilled=400),
            outcomes(90, 10, not_found=3),
        ]
        assert recent_crawl_outcomes(session, "coles_barcodes", limit=1) == [outcomes(1, 2)]
    monitor = monitor_for(url_of(engine))
    history = monitor.read_history("coles_barcodes")
    assert gtin_baseline(history, Thresholds()) == [0.7, 0.9]
    verdict = evaluate(stats_of(0, 50), Thresholds(), history)
    assert verdict.failures == f"gtin share 0.00 < 0.40 (half the recent runs' median 0.80): {HINT}"


def test_the_barcode_spider_has_its_history_read_when_it_opens_and_the_listing_spider_not(
    engine: Engine,
) -> None:
    record_runs(engine, [("coles_barcodes", outcomes(90, 10))])
    listing = monitor_for(url_of(engine))
    listing.spider_opened(SimpleNamespace(name="coles_products"))  # type: ignore[arg-type]
    assert listing.history is None  # no GTIN check for it
    settings = ColesBarcodesSpider.custom_settings or {}
    monitor = monitor_for(url_of(engine), **settings)
    monitor.spider_opened(SimpleNamespace(name="coles_barcodes"))  # type: ignore[arg-type]
    assert monitor.history is not None
    assert monitor.history.result(timeout=30) == [outcomes(90, 10)]


def test_a_database_that_cannot_be_read_is_no_history_and_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    monitor = monitor_for(
        "postgresql://postgres:s3cret@127.0.0.1:1/nowhere", COLES_LEDGER_CONNECT_TIMEOUT=2
    )
    with caplog.at_level(logging.WARNING, logger="colesbarcodes.extensions.crawl_monitor"):
        started = time.monotonic()
        assert monitor.read_history("coles_barcodes") == []
        assert time.monotonic() - started < 10
    (record,) = caplog.records
    assert record.getMessage().startswith("No run history for the drift monitor: the database")
    assert record.exc_info is None  # no traceback
    assert "s3cret" not in caplog.text


# --- a real crawl --------------------------------------------------------------------------------

PRODUCTS = 200
SEED = 4


@pytest.fixture
def replica() -> Iterator[ReplicaProcess]:
    with ReplicaProcess(products=PRODUCTS, seed=SEED) as site:
        yield site


def test_a_crawl_whose_site_stopped_answering_gtins_fails_its_drift_monitor(
    engine: Engine, replica: ReplicaProcess, enrichment_inbox: Path
) -> None:
    active = [p.sku for p in Catalogue.generate(PRODUCTS, seed=SEED) if p.status == "active"]
    # a normal night: the history
    write_jsonl(enrichment_inbox / "monday.jsonl", [{"sku": s} for s in active[:60]])
    normal = run_crawl(url_of(engine), enrichment_inbox, replica.url)
    assert normal.returncode == 0, normal.log[-3000:]
    assert normal.stats["monitor/result"] == "passed"
    assert normal.stats["monitor/gtin_history_runs"] == 0  # the first run: the floor
    assert normal.stats["monitor/gtin_share_expected"] == 0.05
    counts = {k: normal.stats.get(f"coles/outcome/{k}", 0) for k in ("found", "invalid_barcode")}
    usual = sum(counts.values()) / (sum(counts.values()) + normal.stats["coles/outcome/no_barcode"])
    assert normal.stats["monitor/gtin_share"] == round(usual, 4)
    assert usual > 0.7
    assert normal.stats["monitor/format_error_share"] == 0.0
    assert normal.stats["coles/answers_read"] == 60
    # the site's records no longer carry the GTIN: every product looks like one without
    replica.configure(breaks=["gtin-removed"])
    write_jsonl(enrichment_inbox / "tuesday.jsonl", [{"sku": s} for s in active[60:120]])
    broken = run_crawl(url_of(engine), enrichment_inbox, replica.url)
    assert broken.returncode == 3, broken.log[-3000:]  # a scheduler sees the bad night
    expected = round(0.5 * usual, 4)
    detail = f"gtin share 0.00 < {expected:.2f} (half the recent runs' median {usual:.2f}): {HINT}"
    assert broken.stats["monitor/result"] == "failed"
    assert broken.stats["monitor/failures"] == detail
    assert broken.stats["finish_reason"] == f"monitor_failed: {detail}"
    assert broken.stats["monitor/gtin_share"] == 0.0
    assert broken.stats["monitor/gtin_share_expected"] == expected
    assert broken.stats["monitor/gtin_history_runs"] == 1
    assert broken.stats["coles/outcome/no_barcode"] == 60
    assert f"Monitors failed: {detail}" in broken.log
    # the run ledger and the report carry the verdict
    with session_factory(engine)() as session:
        runs = list(session.scalars(select(CrawlRun).order_by(CrawlRun.id)))
        page = render_report(quality_report(session))
    assert [(r.monitor_result, r.finish_reason) for r in runs] == [
        ("passed", "finished"),
        ("failed", f"monitor_failed: {detail}"),
    ]
    assert runs[1].monitor_detail == detail
    assert runs[1].stats["monitor/gtin_share_expected"] == expected
    assert "run scrapy site-check" in page
    shown = run_loader(url_of(engine), "runs", "--json")
    assert shown.exit_code == 0, shown.output
    newest = json.loads(shown.output)[0]
    assert (newest["monitor_result"], newest["finish_reason"]) == (
        "failed",
        f"monitor_failed: {detail}",
    )


def test_every_answer_the_site_refuses_as_an_unknown_document_is_a_format_error(
    tmp_path: Path, enrichment_inbox: Path
) -> None:
    """GraphQL no longer knows the crawl's query: the crawl stops as site_changed (exit 4,
    more telling than 3) and its monitors count every SKU of the refused documents."""
    active = [p.sku for p in Catalogue.generate(PRODUCTS, seed=SEED) if p.status == "active"]
    write_jsonl(enrichment_inbox / "skus.jsonl", [{"sku": s} for s in active[:30]])
    with ReplicaProcess(
        products=PRODUCTS, seed=SEED, args=["--break", "operation-renamed"]
    ) as site:
        result = run_crawl(f"sqlite:///{tmp_path / 'runs.sqlite3'}", enrichment_inbox, site.url)
    assert result.returncode == 4, result.log[-3000:]
    assert result.stats["finish_reason"].startswith("site_changed: GraphQL refused")
    assert result.stats["coles/site_format_errors"] == result.stats["coles/answers_read"] == 30
    assert result.stats["monitor/format_error_share"] == 1.0
    assert result.stats["monitor/failures"].endswith(f"format error share 1.00 > 0.05: {HINT}")
