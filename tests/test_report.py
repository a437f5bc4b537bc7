"""The data-quality report, the run ledger and the crawl monitors.

The report is rendered from a database these tests fill, opened in headless Chromium, and
every figure it shows is read back from the page and compared with the database's.
Crawls against the replica check that a bad run fails its monitor (finish reason, stats
file, exit status, run ledger) and a clean one passes.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select, update
from stdnum import ean

from colesbarcodes.db.engine import session_factory
from colesbarcodes.db.lookups import LookupRow, record_lookups
from colesbarcodes.db.models import CompanySku, CrawlRun, ImportedFile, Product
from colesbarcodes.db.reports import quality_report
from colesbarcodes.db.runs import RunRecord, record_crawl_run
from colesbarcodes.extensions.crawl_monitor import Thresholds, evaluate
from colesbarcodes.gtin import parse_gtin
from colesbarcodes.inbox.lines import ProductLine
from colesbarcodes.replica.catalogue import Catalogue
from colesbarcodes.replica.process import ReplicaProcess
from loaders.report import render_report
from tests.conftest import require
from tests.helpers import lookups, run_crawl, run_loader, write_jsonl

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from playwright.sync_api import Page, Route
    from sqlalchemy.engine import Engine

    from colesbarcodes.inbox.claims import Inbox

NOW = datetime.now(UTC).replace(microsecond=0)
DAYS = [NOW - timedelta(days=n) for n in (3, 2, 1, 0)]  # the fixture's four days
CHROMIUM = os.environ.get("COLES_CHROMIUM_PATH", "/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def gtin(n: int) -> str:
    body = f"93{n:010d}"
    return body + ean.calc_check_digit(body)


MILK, TIMTAM, WOOLIES_MILK, BREAD, OTHER_MILK, YOGHURT = (gtin(n) for n in range(1, 7))


def url_of(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def as_json(url: str, *args: str) -> Any:
    result = run_loader(url, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def import_files(engine: Engine, inbox: Inbox, files: dict[str, list[Any]], day: datetime) -> None:
    """Import files with the loader, then date what they created to ``day``."""
    cutoff = datetime.now(UTC) - timedelta(minutes=5)
    for name, rows in files.items():
        write_jsonl(inbox.root / name, rows)
    result = run_loader(
        url_of(engine),
        "update",
        "--products",
        "--once",
        "--no-progress",
        "--inbox",
        str(inbox.root),
    )
    assert result.exit_code == 0, result.output
    with session_factory(engine).begin() as session:
        session.execute(update(Product).where(Product.created_at > cutoff).values(created_at=day))
        session.execute(
            update(ImportedFile)
            .where(ImportedFile.started_at > cutoff)
            .values(started_at=day, finished_at=day)
        )


def store_lookups(
    engine: Engine, day: datetime, outcomes: dict[int, tuple[str, str | None]]
) -> None:
    """Lookup outcomes of one crawl day; found barcodes are applied like the crawl does."""
    rows, found = [], []
    for number, (sku, (outcome, barcode)) in enumerate(outcomes.items(), 1):
        rows.append(
            LookupRow(
                company="coles",
                sku=str(sku),
                outcome=outcome,
                barcode=barcode,
                reason="HTTP 503 after retries" if outcome == "failed" else None,
                file="skus.jsonl",
                looked_up_at=day,
            )
        )
        if outcome == "found":
            found.append(
                (
                    number,
                    ProductLine(
                        company="coles", sku=str(sku), barcode=parse_gtin(barcode), scraped_at=day
                    ),
                )
            )
    with session_factory(engine).begin() as session:
        record_lookups(session, rows, found, source="crawl")


def product_of(engine: Engine, sku: int) -> int:
    with engine.connect() as conn:
        product_id = conn.scalar(
            select(CompanySku.product_id).where(
                CompanySku.company == "coles", CompanySku.sku == str(sku)
            )
        )
    assert product_id is not None
    return int(product_id)


@pytest.fixture
def filled(engine: Engine, inbox: Inbox) -> Engine:
    """Four days of a small catalogue: imports, lookups (some SKUs failing again and
    again), a merge, a conflict, and three crawl runs in the ledger."""
    import_files(
        engine,
        inbox,
        {
            "coles_store-0584.jsonl": [
                {"sku": 101, "name": "Full Cream Milk", "price": 3.1, "barcode": MILK},
                {"sku": 102, "name": "Bread", "price": 4.0},
                {"sku": 103, "name": "Eggs", "price": 5.5},
                {"sku": 104, "name": "Tim Tam Original", "price": 4.5},
                {"sku": 105, "name": "Cheese", "price": 7.0},
                {"sku": 106, "name": "Tim Tam <Original> & Co", "price": 4.5, "barcode": TIMTAM},
            ],
            "woolworths_store-1234.jsonl": [
                {
                    "company": "woolworths",
                    "sku": "W1",
                    "name": "Milk",
                    "price": 3.0,
                    "barcode": WOOLIES_MILK,
                },
                {"company": "woolworths", "sku": "W2", "name": "Rolls", "price": 2.0},
            ],
        },
        DAYS[0],
    )
    store_lookups(
        engine,
        DAYS[1],
        {
            102: ("found", BREAD),
            103: ("failed", None),
            104: ("failed", None),
            105: ("no_barcode", None),
        },
    )
    merged_away = product_of(engine, 104)
    import_files(
        engine,
        inbox,
        {
            "coles_store-0601.jsonl": [
                {"sku": 101, "price": 3.2, "barcode": OTHER_MILK},  # a conflict: 101 holds MILK
                {"sku": 104, "price": 4.6, "barcode": TIMTAM},  # a merge into 106's product
                {"sku": 108, "name": "Yoghurt", "price": 1.5},
            ]
        },
        DAYS[2],
    )
    assert product_of(engine, 104) == product_of(engine, 106) != merged_away
    store_lookups(
        engine,
        DAYS[2],
        {
            103: ("failed", None),
            104: ("failed", None),
            105: ("failed", None),
            108: ("failed", None),
        },
    )
    store_lookups(
        engine,
        DAYS[3],
        {
            103: ("failed", None),
            104: ("prefilled", TIMTAM),
            105: ("failed", None),
            108: ("found", YOGHURT),
        },
    )
    runs = [
        (
            DAYS[1],
            None,
            "failed",
            "failed share 0.50 > 0.25",
            {"found": 1, "failed": 2, "no_barcode": 1},
        ),
        (DAYS[2], "job-2", "failed", "failed share 1.00 > 0.25", {"failed": 4}),
        (DAYS[3], "job-3", "passed", None, {"found": 1, "failed": 2, "prefilled": 1}),
    ]
    with session_factory(engine).begin() as session:
        for started, job, result, detail, outcomes in runs:
            record_crawl_run(
                session,
                RunRecord(
                    spider="coles_barcodes",
                    job=job,
                    started_at=started,
                    finished_at=started + timedelta(minutes=4, seconds=12),
                    finish_reason=f"monitor_failed: {detail}" if detail else "finished",
                    monitor_result=result,
                    monitor_detail=detail,
                    outcomes=outcomes,
                    stats={"finish_reason": "finished"},
                ),
            )
    return engine


# --- what the database says -------------------------------------------------------------------


def test_the_report_figures_are_the_data_quality_figures(filled: Engine, tmp_path: Path) -> None:
    url = url_of(filled)
    with session_factory(filled)() as session:
        report = quality_report(session)
    assert report["data_quality"] == as_json(url, "data-quality")
    totals = report["data_quality"]["totals"]
    assert (
        totals["products"],
        totals["with_barcode"],
        totals["open_conflicts"],
        totals["merges"],
    ) == (8, 5, 1, 1)
    printed = as_json(url, "report", "--out", str(tmp_path / "report.html"))
    assert printed["out"] == str(tmp_path / "report.html")
    assert printed["data_quality"] == report["data_quality"]
    assert printed["runs"] == report["runs"]


def test_coverage_over_time_is_rebuilt_from_products_lookups_and_the_import_ledger(
    filled: Engine,
) -> None:
    with session_factory(filled)() as session:
        timeline = quality_report(session)["timeline"]
    assert [d["day"] for d in timeline] == [d.strftime("%Y-%m-%d") for d in DAYS]
    # products count from their creation (the merged one is gone), barcodes from the first
    # lookup that found them, or from the import that brought them
    assert [(d["products"], d["with_barcode"], d["barcode_pct"]) for d in timeline] == [
        (7, 3, 42.86),
        (7, 4, 57.14),
        (8, 4, 50.0),
        (8, 5, 62.5),
    ]
    assert [d["files_imported"] for d in timeline] == [2, 0, 1, 0]
    assert [d["lines_imported"] for d in timeline] == [8, 0, 3, 0]
    assert timeline[2]["outcomes"] == {"failed": 4}
    assert timeline[3]["lookups"] == 4


def test_skus_that_fail_twice_or_more_are_listed_still_failing_first(filled: Engine) -> None:
    with session_factory(filled)() as session:
        failing = quality_report(session)["failing_skus"]
    assert failing["total"] == 3
    assert [(r["sku"], r["failures"], r["still_failing"]) for r in failing["rows"]] == [
        (103, 3, True),
        (105, 2, True),
        (104, 2, False),  # prefilled since: it got its barcode from the merge
    ]
    assert failing["rows"][0]["last_reason"] == "HTTP 503 after retries"
    assert failing["rows"][2]["product_id"] == product_of(filled, 106)


def test_runs_lists_the_run_ledger_newest_first(filled: Engine) -> None:
    url = url_of(filled)
    runs = as_json(url, "runs")
    assert [r["job"] for r in runs] == ["job-3", "job-2", None]
    assert [r["monitor_result"] for r in runs] == ["passed", "failed", "failed"]
    assert runs[1]["finish_reason"] == "monitor_failed: failed share 1.00 > 0.25"
    assert runs[0]["outcomes"] == {"failed": 2, "found": 1, "prefilled": 1}
    assert runs[0]["duration_s"] == 252.0
    assert runs[0]["stats"] == {"finish_reason": "finished"}
    table = run_loader(url, "runs", "--limit", "2").output
    assert "monitor_failed: failed share 1.00 > 0.25" in table
    assert len([line for line in table.splitlines() if "coles_barcodes" in line]) == 2


# --- what a person sees -------------------------------------------------------------------------


@pytest.fixture
def browser_page() -> Iterator[Page]:
    require(os.path.exists(CHROMIUM), f"Chromium not found at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            yield browser.new_page(viewport={"width": 1280, "height": 900})
        finally:
            browser.close()


def number(text: str) -> float:
    """``1,234`` → 1234, ``62.50 %`` → 62.5."""
    cleaned = re.sub(r"[^\d.\-]", "", text)
    return float(cleaned)


def table_rows(page: Page, table_id: str) -> list[dict[str, str]]:
    """The rows of a table of the page, each as {column title: cell text}."""
    titles = [
        t.strip()
        for t in page.eval_on_selector_all(
            f"#{table_id} thead th", "ths => ths.map(t => t.textContent)"
        )
    ]
    return [
        dict(zip(titles, (cell.strip() for cell in row), strict=True))
        for row in page.eval_on_selector_all(
            f"#{table_id} tbody tr",
            "rows => rows.map(r => [...r.cells].map(c => c.textContent))",
        )
    ]


def test_the_report_page_shows_the_database_figures_in_charts_and_tables(
    filled: Engine, browser_page: Page, tmp_path: Path
) -> None:
    url = url_of(filled)
    out = tmp_path / "report" / "report.html"
    result = run_loader(url, "report", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert f"Report written to {out}" in result.output
    with session_factory(filled)() as session:
        expected = quality_report(session)
    quality = as_json(url, "data-quality")
    totals = quality["totals"]

    page = browser_page
    outside: list[str] = []

    def refuse(route: Route) -> None:
        outside.append(route.request.url)
        route.abort()

    page.route(re.compile(r"^(?!file:).*"), refuse)
    page.goto(out.as_uri())
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert outside == []  # self-contained: nothing fetched

    # the tiles
    tiles = {
        key: page.text_content(f"#totals [data-key={key}] .value") or ""
        for key in (
            "products",
            "with_barcode",
            "barcode_pct",
            "with_sku",
            "open_conflicts",
            "merges",
        )
    }
    assert {k: number(v) for k, v in tiles.items()} == {
        k: totals[k]
        for k in ("products", "with_barcode", "barcode_pct", "with_sku", "open_conflicts", "merges")
    }
    assert page.text_content("#totals [data-key=last_run] .value") == "passed"

    # coverage per company and per store: bars and tables
    companies = page.eval_on_selector_all(
        "#chart-companies g.bar",
        "gs => gs.map(g => [g.dataset.label, g.querySelector('.value').textContent])",
    )
    assert [(label, number(value)) for label, value in companies] == [
        (c["company"], c["barcode_pct"]) for c in quality["companies"]
    ]
    assert [
        [r["company"], number(r["products"]), number(r["with barcode"]), number(r["coverage"])]
        for r in table_rows(page, "table-companies")
    ] == [
        [c["company"], c["products"], c["with_barcode"], c["barcode_pct"]]
        for c in quality["companies"]
    ]
    stores = page.eval_on_selector_all(
        "#chart-stores g.bar",
        "gs => gs.map(g => [g.dataset.label, g.querySelector('.value').textContent])",
    )
    by_store = {f"{s['company']} {s['store_id']}": s["barcode_pct"] for s in quality["stores"]}
    assert {label: number(value) for label, value in stores} == by_store
    assert [number(v) for _, v in stores] == sorted(by_store.values())  # lowest first
    assert [
        [
            r["company"],
            r["store"],
            number(r["products"]),
            number(r["with barcode"]),
            number(r["coverage"]),
        ]
        for r in table_rows(page, "table-stores")
    ] == [
        [s["company"], s["store_id"], s["products"], s["with_barcode"], s["barcode_pct"]]
        for s in quality["stores"]
    ]

    # coverage over time: one point a day, the last one today's coverage
    points = page.eval_on_selector_all(
        "#chart-timeline circle.point",
        "cs => cs.map(c => [c.dataset.day, Number(c.dataset.value)])",
    )
    assert points == [[d["day"], d["barcode_pct"]] for d in expected["timeline"]]
    assert points[-1][1] == totals["barcode_pct"]
    assert number(page.text_content("#chart-timeline .end-label") or "") == totals["barcode_pct"]
    assert page.locator("#chart-timeline polyline.coverage").count() == 1
    assert page.locator("#chart-timeline polyline.found-share").count() == 1
    days = table_rows(page, "table-timeline")
    assert [
        (r["day"], number(r["products"]), number(r["with barcode"]), number(r["coverage"]))
        for r in days
    ] == [
        (d["day"], d["products"], d["with_barcode"], d["barcode_pct"])
        for d in reversed(expected["timeline"])
    ]

    # crawl runs: one stacked bar a run, its segments the outcome counts; failed ones marked
    bars = page.eval_on_selector_all(
        "#chart-runs g.run-bar",
        """gs => gs.map(g => ({run: Number(g.dataset.run), monitor: g.dataset.monitor,
            marked: g.querySelector('.fail-mark') !== null,
            outcomes: Object.fromEntries([...g.querySelectorAll('rect.segment')].map(
                r => [r.dataset.outcome, Number(r.dataset.value)]))}))""",
    )
    assert bars == [
        {
            "run": r["id"],
            "monitor": r["monitor_result"],
            "marked": r["monitor_result"] == "failed",
            "outcomes": r["outcomes"],
        }
        for r in reversed(expected["runs"])
    ]
    runs = table_rows(page, "table-runs")
    assert [(int(r["run"]), r["job"], r["monitors"], r["finish reason"]) for r in runs] == [
        (r["id"], r["job"] or "\u2013", r["monitor_result"], r["finish_reason"])
        for r in expected["runs"]
    ]
    assert [
        {o: number(r[o.replace("_", " ")]) for o in ("found", "prefilled", "no_barcode", "failed")}
        for r in runs
    ] == [
        {o: r["outcomes"].get(o, 0) for o in ("found", "prefilled", "no_barcode", "failed")}
        for r in expected["runs"]
    ]
    assert [number(r["SKUs"]) for r in runs] == [r["skus"] for r in expected["runs"]]
    assert "spider" not in runs[0]  # one spider: no column for it

    # conflicts, merges, failing SKUs: rows, and product ids that lead to their details
    conflicts = table_rows(page, "table-conflicts")
    assert len(conflicts) == totals["open_conflicts"] == 1
    assert [conflicts[0][k] for k in ("product", "company", "SKU", "holds", "offered")] == [
        str(product_of(filled, 101)),
        "coles",
        "101",
        MILK,
        OTHER_MILK,
    ]
    merges = table_rows(page, "table-merges")
    assert len(merges) == totals["merges"] == 1
    assert merges[0]["survivor"] == str(product_of(filled, 106))
    failing = table_rows(page, "table-failing")
    assert [(r["SKU"], number(r["failures"]), r["latest outcome"]) for r in failing] == [
        ("103", 3, "failed"),
        ("105", 2, "failed"),
        ("104", 2, "prefilled"),
    ]
    links = page.eval_on_selector_all("main a.pid", "as => as.map(a => a.getAttribute('href'))")
    assert links
    for href in set(links):
        assert page.locator(href).count() == 1, href
    survivor = product_of(filled, 106)
    page.click(f"#table-merges a[href='#product-{survivor}']")
    card = page.text_content(f"#product-{survivor}") or ""
    assert "Tim Tam <Original> & Co" in card  # shown as text, not markup
    assert TIMTAM in card
    assert f"coles-loader inspect-product {survivor}" in card
    merged_card = page.text_content(f"#product-{merges[0]['merged']}") or ""
    assert f"Merged into {survivor}" in merged_card


def test_an_empty_database_gives_a_page_that_says_so(engine: Engine, tmp_path: Path) -> None:
    out = tmp_path / "empty.html"
    result = run_loader(url_of(engine), "report", "--out", str(out))
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert "No crawl run recorded yet" in page
    assert "No open conflicts." in page
    assert "No SKU failed more than once." in page


def test_text_from_the_database_is_escaped(engine: Engine) -> None:
    with session_factory(engine)() as session:
        report = quality_report(session)
    report["data_quality"]["companies"] = [
        {
            "company": "<script>alert(1)</script>",
            "products": 1,
            "with_sku": 1,
            "with_barcode": 0,
            "barcode_pct": 0.0,
        }
    ]
    page = render_report(report)
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_report_and_runs_explain_themselves(tmp_path: Path) -> None:
    for command in ("report", "runs"):
        result = run_loader(f"sqlite:///{tmp_path / 'x.db'}", command, "--help")
        assert result.exit_code == 0
        assert "Usage: " in result.output
        assert len(result.output.splitlines()) > 6


# --- the monitors ---------------------------------------------------------------------------


def test_the_failed_share_counts_only_skus_asked_of_the_site() -> None:
    stats = {"coles/outcome/failed": 2, "coles/outcome/found": 8, "coles/outcome/prefilled": 90}
    verdict = evaluate(stats, Thresholds(max_failed_share=0.1))
    assert not verdict.passed
    assert verdict.failures == "failed share 0.20 > 0.10"
    assert evaluate(stats, Thresholds(max_failed_share=0.2)).passed
    assert evaluate({}, Thresholds()).passed  # nothing looked up: nothing failed


def test_challenges_dropped_items_and_errors_fail_the_verdict() -> None:
    stats = {
        "botcheck/detected": 40,
        "downloader/response_count": 100,
        "item_dropped_count": 1,
        "log_count/ERROR": 2,
    }
    verdict = evaluate(stats, Thresholds(max_challenge_share=0.3))
    assert verdict.result == "failed"
    assert (
        verdict.failures == "challenge share 0.40 > 0.30; items dropped 1 > 0; errors logged 2 > 0"
    )
    assert evaluate(
        stats, Thresholds(max_challenge_share=0.5, max_items_dropped=1, max_errors=2)
    ).passed


PRODUCTS = 120


@pytest.fixture
def replica() -> Iterator[ReplicaProcess]:
    with ReplicaProcess(products=PRODUCTS, seed=3) as site:
        yield site


def catalogue_skus(count: int) -> list[int]:
    return [p.sku for p in list(Catalogue.generate(PRODUCTS, seed=3))[:count]]


def ledger(engine: Engine) -> list[CrawlRun]:
    with session_factory(engine)() as session:
        return list(session.scalars(select(CrawlRun).order_by(CrawlRun.id)))


def test_a_crawl_whose_lookups_mostly_fail_fails_its_monitor(
    engine: Engine, replica: ReplicaProcess, enrichment_inbox: Path
) -> None:
    wanted = catalogue_skus(20)
    replica.configure(fail_skus=wanted[:15], retry_after_s=0)
    write_jsonl(enrichment_inbox / "skus.jsonl", [{"sku": s} for s in wanted])
    result = run_crawl(url_of(engine), enrichment_inbox, replica.url, "-s", "RETRY_TIMES=0")
    assert result.returncode == 3, result.log[-3000:]  # a scheduler sees the bad run
    assert result.stats["monitor/result"] == "failed"
    assert result.stats["monitor/failed_share"] == 0.75
    assert result.stats["finish_reason"] == "monitor_failed: failed share 0.75 > 0.25"
    assert "Monitors failed: failed share 0.75 > 0.25" in result.log
    stored = Counter(outcome for _, outcome, _ in lookups(engine))
    assert stored["failed"] == 15
    (run,) = ledger(engine)
    assert (run.spider, run.job, run.monitor_result) == ("coles_barcodes", None, "failed")
    assert run.finish_reason == "monitor_failed: failed share 0.75 > 0.25"
    assert run.monitor_detail == "failed share 0.75 > 0.25"
    assert run.outcomes == dict(stored)
    assert run.stats["monitor/result"] == "failed"
    assert run.started_at <= run.finished_at
    # the same crawl with a looser threshold passes
    replica.configure(fail_skus=[])
    write_jsonl(enrichment_inbox / "again.jsonl", [{"sku": s} for s in wanted[:4]])
    result = run_crawl(
        url_of(engine), enrichment_inbox, replica.url, "-s", "COLES_MONITOR_MAX_FAILED_SHARE=0.9"
    )
    assert result.returncode == 0, result.log[-3000:]


def test_a_clean_crawl_passes_its_monitor_and_is_in_the_ledger_with_its_job(
    engine: Engine, replica: ReplicaProcess, enrichment_inbox: Path
) -> None:
    wanted = catalogue_skus(25)
    write_jsonl(enrichment_inbox / "skus.jsonl", [{"sku": s} for s in wanted])
    result = run_crawl(url_of(engine), enrichment_inbox, replica.url, "-a", "_job=nightly-42")
    assert result.returncode == 0, result.log[-3000:]
    assert result.stats["monitor/result"] == "passed"
    assert result.stats["finish_reason"] == "finished"
    (run,) = ledger(engine)
    assert (run.job, run.monitor_result, run.monitor_detail, run.finish_reason) == (
        "nightly-42",
        "passed",
        None,
        "finished",
    )
    assert run.outcomes == dict(Counter(outcome for _, outcome, _ in lookups(engine)))
    assert sum(run.outcomes.values()) == len(wanted)
    shown = as_json(url_of(engine), "runs")
    assert [(r["job"], r["monitor_result"], r["skus"]) for r in shown] == [
        ("nightly-42", "passed", 25)
    ]


def test_an_unreachable_database_leaves_the_run_unrecorded_without_a_traceback(
    replica: ReplicaProcess, enrichment_inbox: Path
) -> None:
    write_jsonl(enrichment_inbox / "skus.jsonl", [{"sku": s} for s in catalogue_skus(3)])
    result = run_crawl(
        "postgresql://postgres:s3cret@127.0.0.1:1/nowhere", enrichment_inbox, replica.url
    )
    assert result.stats["finish_reason"].startswith("database_unavailable")  # kept as it is
    assert result.returncode == 7  # database unavailable: a status a scheduler can act on
    assert "This run is not in the run ledger: the database" in result.log
    assert "Traceback" not in result.log
    assert "s3cret" not in result.log
