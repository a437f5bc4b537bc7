"""`scrapy crawl coles_barcodes` against the replica site, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import func, select

from colesbarcodes.db.catalog import apply_lines
from colesbarcodes.db.engine import session_factory
from colesbarcodes.db.models import CompanySku, Lookup, Product
from colesbarcodes.inbox.lines import parse_object
from colesbarcodes.replica.catalogue import Catalogue, ReplicaProduct
from colesbarcodes.replica.process import ReplicaProcess
from tests.conftest import require
from tests.helpers import PROJECT, crawl_command, crawl_env, lookups, run_crawl, write_jsonl

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from sqlalchemy.engine import Engine

PRODUCTS = 300
CATALOGUE = Catalogue.generate(PRODUCTS, seed=1)


def expected_outcome(product: ReplicaProduct) -> tuple[str, str | None]:
    if product.status != "active":
        return "not_found", None
    kind = product.gtin_kind
    if kind in ("missing", "null", "empty"):
        return "no_barcode", None
    if kind == "invalid":
        return "invalid_barcode", None
    return "found", product.expected_gtin


@pytest.fixture
def replica() -> Iterator[ReplicaProcess]:
    with ReplicaProcess(products=PRODUCTS, seed=1) as site:
        yield site


def skus(first: int, count: int) -> list[int]:
    return [p.sku for p in list(CATALOGUE)[first : first + count]]


def store_barcodes(engine: Engine, rows: list[dict[str, Any]]) -> None:
    lines = []
    for number, row in enumerate(rows, 1):
        line = parse_object(row)
        assert line is not None
        lines.append((number, line))
    with session_factory(engine).begin() as session:
        apply_lines(session, lines, source="known.jsonl")


def url_of(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def test_prefilled_skus_get_no_request_at_all(
    engine: Engine, replica: ReplicaProcess, enrichment_inbox: Path
) -> None:
    wanted = skus(0, 60)
    known = [p for p in list(CATALOGUE)[:60] if expected_outcome(p)[0] == "found"][:25]
    store_barcodes(engine, [{"sku": p.sku, "barcode": p.expected_gtin} for p in known])
    write_jsonl(enrichment_inbox / "skus.jsonl", [{"sku": s} for s in wanted])
    result = run_crawl(url_of(engine), enrichment_inbox, replica.url)
    assert result.returncode == 0, result.log[-3000:]
    requested = replica.stats()["by_sku_kind"]["graphql"]
    assert not {str(p.sku) for p in known} & set(requested)  # not one request for a known SKU
    assert sorted(requested) == sorted(str(s) for s in wanted if s not in {p.sku for p in known})
    assert all(count == 1 for count in requested.values())
    assert result.stats["prefill/skipped"] == 25
    assert result.stats["prefill/missing"] == 35
    outcomes = Counter(outcome for _, outcome, _ in lookups(engine))
    assert outcomes["prefilled"] == 25
    assert sum(outcomes.values()) == 60


def test_a_barcode_on_one_of_duplicate_rows_still_prefills(
    engine: Engine, replica: ReplicaProcess, enrichment_inbox: Path
) -> None:
    """The old tool's last-one-wins map lost this barcode: the later row had none."""
    product = next(p for p in CATALOGUE if expected_outcome(p)[0] == "found")
    store_barcodes(
        engine,
        [
            {
                "sku": product.sku,
                "store_id": "0584",
                "barcode": product.expected_gtin,
                "price": 1.0,
            },
            {"sku": product.sku, "store_id": "0601", "barcode": None, "price": 1.1},
        ],
    )
    write_jsonl(
        enrichment_inbox / "dups.jsonl",
        [{"sku": product.sku}, {"sku": product.sku, "barcode": None}],
    )
    result = run_crawl(url_of(engine), enrichment_inbox, replica.url)
    assert result.returncode == 0, result.log[-3000:]
    assert replica.stats()["by_sku"].get(str(product.sku)) is None
    assert lookups(engine) == [(str(product.sku), "prefilled", product.expected_gtin)]


@pytest.mark.parametrize("in_thread", [False, True], ids=["reactor-thread", "worker-thread"])
def test_outcomes_are_stored_for_found_missing_invalid_and_unknown(
    engine: Engine, replica: ReplicaProcess, enrichment_inbox: Path, in_thread: bool
) -> None:
    products = list(CATALOGUE)[:PRODUCTS]
    unknown = [9_999_001, 9_999_002]
    write_jsonl(
        enrichment_inbox / "all.jsonl",
        [{"sku": p.sku} for p in products] + [{"sku": s} for s in unknown],
    )
    result = run_crawl(
        url_of(engine),
        enrichment_inbox,
        replica.url,
        "-s",
        f"COLES_DB_WRITE_THREAD={in_thread}",
        "-s",
        "COLES_UPSERT_BATCH_SIZE=7",  # several batches
    )
    assert result.returncode == 0, result.log[-3000:]
    stored = {sku: (outcome, barcode) for sku, outcome, barcode in lookups(engine)}
    expected = {str(p.sku): expected_outcome(p) for p in products}
    expected.update({str(s): ("not_found", None) for s in unknown})
    assert stored == expected
    kinds = Counter(outcome for outcome, _ in expected.values())
    assert kinds["found"]
    assert kinds["no_barcode"]
    assert kinds["invalid_barcode"]
    assert kinds["not_found"]
    with engine.connect() as conn:
        barcodes = dict(
            conn.execute(
                select(CompanySku.sku, Product.barcode).join(
                    Product, Product.id == CompanySku.product_id
                )
            ).all()
        )
    found = {sku: barcode for sku, (outcome, barcode) in expected.items() if outcome == "found"}
    # every found barcode is stored, except where another product already holds it (a conflict)
    assert sum(barcodes.get(sku) == barcode for sku, barcode in found.items()) >= len(found) - 2
    assert not list(enrichment_inbox.glob("*.jsonl"))  # the file is done and deleted
    assert not list((enrichment_inbox / "processing").glob("*.jsonl"))


def test_the_bot_check_is_solved_once_in_chromium_then_plain_http(
    engine: Engine, enrichment_inbox: Path
) -> None:
    chromium = os.environ.get("COLES_CHROMIUM_PATH", "/usr/bin/chromium")
    require(os.path.exists(chromium), f"Chromium not found at {chromium}")
    wanted = skus(0, 40)
    write_jsonl(enrichment_inbox / "skus.jsonl", [{"sku": s} for s in wanted])
    with ReplicaProcess(products=PRODUCTS, seed=1, challenge=True) as site:
        result = run_crawl(url_of(engine), enrichment_inbox, site.url)
        assert result.returncode == 0, result.log[-3000:]
        challenge = site.stats()["challenge"]
    assert result.stats["botcheck/browser_pages"] == 1
    assert result.stats["botcheck/solved"] == 1
    assert result.stats["playwright/page_count"] == 1  # one browser page in the whole crawl
    assert challenge["cookies_accepted"] == 1
    assert (
        result.stats.get("playwright/request_count/method/POST") is None
    )  # API calls over plain HTTP
    # several SKUs per GraphQL document: fewer API requests than SKUs
    assert result.stats["downloader/request_method_count/POST"] < len(wanted)
    assert result.stats["coles/graphql/skus"] == len(wanted)
    assert len(lookups(engine)) == len(wanted)


def test_429_and_503_are_retried_honouring_retry_after(
    engine: Engine, replica: ReplicaProcess, enrichment_inbox: Path
) -> None:
    replica.configure(rate_limit_every=4, unavailable_every=7, retry_after_s=1)
    wanted = skus(0, 30)
    write_jsonl(enrichment_inbox / "skus.jsonl", [{"sku": s} for s in wanted])
    # small documents, so that enough requests meet the every-4th and every-7th faults
    result = run_crawl(url_of(engine), enrichment_inbox, replica.url, "-s", "COLES_GRAPHQL_BATCH=3")
    assert result.returncode == 0, result.log[-3000:]
    statuses = result.stats
    limited = statuses.get("downloader/response_status_count/429", 0)
    unavailable = statuses.get("downloader/response_status_count/503", 0)
    assert limited > 0
    assert unavailable > 0
    assert statuses["retry/count"] == limited + unavailable
    assert statuses["retry/waited_ms"] >= 1000 * (limited + unavailable)  # Retry-After: 1 s each
    assert Counter(o for _, o, _ in lookups(engine))["failed"] == 0
    assert len(lookups(engine)) == len(wanted)


def test_failed_skus_go_to_a_retry_file_and_the_file_is_finished(
    engine: Engine, replica: ReplicaProcess, enrichment_inbox: Path
) -> None:
    wanted = skus(0, 20)
    replica.configure(fail_skus=wanted[:3], retry_after_s=0)  # the wait is tested above
    write_jsonl(enrichment_inbox / "coles_store-0601_skus.jsonl", [{"sku": s} for s in wanted])
    result = run_crawl(url_of(engine), enrichment_inbox, replica.url, "-s", "RETRY_TIMES=1")
    assert result.returncode == 0, result.log[-3000:]
    assert Counter(o for _, o, _ in lookups(engine))["failed"] == 3
    retry_files = list(enrichment_inbox.glob("retry-*.jsonl"))
    assert len(retry_files) == 1
    assert retry_files[0].name.endswith("--coles_store-0601_skus.jsonl")
    assert [json.loads(line) for line in retry_files[0].read_text().splitlines()] == [
        {"sku": s, "store_id": "0601"} for s in sorted(wanted[:3])
    ]
    assert not (enrichment_inbox / "coles_store-0601_skus.jsonl").exists()
    assert not list((enrichment_inbox / "processing").glob("*.jsonl"))
    # the next run takes the retry file and asks for just those SKUs
    replica.configure(fail_skus=[])
    replica.reset_stats()
    result = run_crawl(url_of(engine), enrichment_inbox, replica.url)
    assert result.returncode == 0, result.log[-3000:]
    assert sorted(replica.stats()["by_sku_kind"]["graphql"]) == sorted(str(s) for s in wanted[:3])


def test_malformed_lines_are_quarantined_and_the_rest_crawled(
    engine: Engine, replica: ReplicaProcess, enrichment_inbox: Path
) -> None:
    wanted = skus(0, 5)
    write_jsonl(
        enrichment_inbox / "mixed.jsonl",
        [{"sku": wanted[0]}, "{nope", {"sku": "abc"}, *({"sku": s} for s in wanted[1:])],
    )
    result = run_crawl(url_of(engine), enrichment_inbox, replica.url)
    assert result.returncode == 0, result.log[-3000:]
    quarantine = [
        json.loads(line)
        for path in (enrichment_inbox / "quarantine").glob("*")
        for line in path.read_text().splitlines()
    ]
    assert [(q["file"], q["line"]) for q in quarantine] == [("mixed.jsonl", 2), ("mixed.jsonl", 3)]
    assert len(lookups(engine)) == 5


def test_a_killed_crawl_restarted_loses_nothing_and_repeats_no_stored_lookup(
    engine: Engine, replica: ReplicaProcess, enrichment_inbox: Path
) -> None:
    wanted = skus(0, PRODUCTS)
    write_jsonl(enrichment_inbox / "big.jsonl", [{"sku": s} for s in wanted])
    # Small documents and a slow site: the crawl needs seconds, so the kill lands mid-crawl.
    replica.configure(delay_ms=100)
    stats_file = enrichment_inbox.parent / "killed.json"
    proc = subprocess.Popen(
        crawl_command(
            enrichment_inbox,
            replica.url,
            "-s",
            "CONCURRENT_REQUESTS=4",
            "-s",
            "COLES_GRAPHQL_BATCH=2",
            "-s",
            "COLES_UPSERT_BATCH_SIZE=10",
        ),
        cwd=PROJECT,
        env=crawl_env(url_of(engine), stats_file),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(lookups(engine)) < 60:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stored_before = {sku for sku, _, _ in lookups(engine)}
    assert 0 < len(stored_before) < len(wanted)
    assert list((enrichment_inbox / "processing").glob("*.jsonl")), "the file stays claimed"
    replica.configure(delay_ms=0)
    result = run_crawl(url_of(engine), enrichment_inbox, replica.url)
    assert result.returncode == 0, result.log[-3000:]
    assert result.stats["prefill/resumed"] == len(stored_before)
    rows = lookups(engine)
    assert Counter(sku for sku, _, _ in rows) == Counter(str(s) for s in wanted)  # one each
    requests = replica.stats()["by_sku_kind"]["graphql"]
    assert all(requests.get(sku, 0) == 1 for sku in stored_before)  # none asked for twice
    assert not list((enrichment_inbox / "processing").glob("*.jsonl")), result.log[-4000:]


def test_recently_checked_skus_without_barcode_are_skipped_until_the_recheck_age(
    engine: Engine, replica: ReplicaProcess, enrichment_inbox: Path
) -> None:
    missing = [p.sku for p in CATALOGUE if expected_outcome(p)[0] == "no_barcode"][:3]
    write_jsonl(enrichment_inbox / "a.jsonl", [{"sku": s} for s in missing])
    assert run_crawl(url_of(engine), enrichment_inbox, replica.url).returncode == 0
    write_jsonl(enrichment_inbox / "b.jsonl", [{"sku": s} for s in missing])
    result = run_crawl(url_of(engine), enrichment_inbox, replica.url)
    assert result.stats["prefill/recently_checked"] == 3
    assert all(count == 1 for count in replica.stats()["by_sku_kind"]["graphql"].values())
    write_jsonl(enrichment_inbox / "c.jsonl", [{"sku": s} for s in missing])
    result = run_crawl(url_of(engine), enrichment_inbox, replica.url, "-s", "COLES_RECHECK_DAYS=0")
    assert result.stats["prefill/missing"] == 3


def test_an_unreachable_database_closes_the_crawl_cleanly(
    replica: ReplicaProcess, enrichment_inbox: Path
) -> None:
    write_jsonl(enrichment_inbox / "skus.jsonl", [{"sku": s} for s in skus(0, 5)])
    result = run_crawl(
        "postgresql://postgres:s3cret@127.0.0.1:1/nowhere", enrichment_inbox, replica.url
    )
    assert result.stats["finish_reason"].startswith("database_unavailable")
    assert "s3cret" not in result.log
    assert "Traceback" not in result.log
    assert (enrichment_inbox / "skus.jsonl").exists()  # nothing taken


def test_lookups_rows_count_each_outcome_once(
    engine: Engine, replica: ReplicaProcess, enrichment_inbox: Path
) -> None:
    wanted = skus(0, 10)
    write_jsonl(enrichment_inbox / "one.jsonl", [{"sku": s} for s in wanted])
    write_jsonl(enrichment_inbox / "two.jsonl", [{"sku": s} for s in wanted[:4]])
    result = run_crawl(url_of(engine), enrichment_inbox, replica.url)
    assert result.returncode == 0, result.log[-3000:]
    with engine.connect() as conn:
        assert (
            conn.scalar(
                select(func.count()).select_from(Lookup).where(Lookup.outcome == "duplicate")
            )
            == 4
        )
    assert all(count == 1 for count in replica.stats()["by_sku_kind"]["graphql"].values())


def test_the_product_page_is_the_fallback_source_and_other_skus_records_are_ignored(
    engine: Engine, replica: ReplicaProcess, enrichment_inbox: Path
) -> None:
    """With COLES_PRODUCT_PAGE_FALLBACK, a record without GTIN is looked for on the product
    page; a page whose embedded record is another SKU's is read from its JSON-LD only."""
    without = [p for p in CATALOGUE if expected_outcome(p)[0] == "no_barcode"][:4]
    replica.configure(page_gtin=True, mismatch_skus=[p.sku for p in without[:2]])
    write_jsonl(enrichment_inbox / "skus.jsonl", [{"sku": p.sku} for p in without])
    result = run_crawl(
        url_of(engine), enrichment_inbox, replica.url, "-s", "COLES_PRODUCT_PAGE_FALLBACK=True"
    )
    assert result.returncode == 0, result.log[-3000:]
    assert replica.stats()["by_kind"]["product_page"] == len(without)
    assert {(sku, outcome) for sku, outcome, _ in lookups(engine)} == {
        (str(p.sku), "no_barcode") for p in without
    }


def test_losing_the_database_mid_crawl_closes_cleanly_and_loses_nothing(
    postgres_server_url: str, replica: ReplicaProcess, enrichment_inbox: Path
) -> None:
    """The database refuses connections mid-crawl: the pipeline retries, gives up, closes the
    spider, writes what it could not store back to the inbox; the next run finishes the job."""
    import psycopg
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    from colesbarcodes.db.engine import make_engine, migrate
    from tests.conftest import ADMIN_URL

    admin_info = (
        make_url(ADMIN_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    name = f"colesbarcodes_outage_{os.getpid()}"
    url = make_url(postgres_server_url).set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(admin_info, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    wanted = skus(0, PRODUCTS)
    write_jsonl(enrichment_inbox / "skus.jsonl", [{"sku": s} for s in wanted])
    replica.configure(delay_ms=50)
    stats_file = enrichment_inbox.parent / "outage.json"
    proc = subprocess.Popen(
        crawl_command(
            enrichment_inbox,
            replica.url,
            "-s",
            "CONCURRENT_REQUESTS=4",
            "-s",
            "COLES_UPSERT_BATCH_SIZE=10",
            "-s",
            "COLES_DB_RETRIES=2",
        ),
        cwd=PROJECT,
        env=crawl_env(url, stats_file),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        engine = make_engine(url, poolclass=NullPool)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(lookups(engine)) < 20:
            time.sleep(0.2)
        engine.dispose()
        with psycopg.connect(admin_info, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
            )
        assert proc.wait(timeout=120) == 7  # the documented status of database_unavailable
        stats = json.loads(stats_file.read_text())
        assert stats["finish_reason"] == "database_unavailable"
        spill = list(enrichment_inbox.glob("spill-*.jsonl"))
        assert len(spill) == 1
        assert list((enrichment_inbox / "processing").glob("*.jsonl")), "the file stays claimed"
        with psycopg.connect(admin_info, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        replica.configure(delay_ms=0)
        result = run_crawl(url, enrichment_inbox, replica.url)
        assert result.returncode == 0, result.log[-3000:]
        engine = make_engine(url)
        stored = lookups(engine)
        engine.dispose()
        assert {sku for sku, _, _ in stored} == {str(s) for s in wanted}  # every SKU has an outcome
        assert not list(enrichment_inbox.glob("*.jsonl"))
        assert not list((enrichment_inbox / "processing").glob("*.jsonl"))
    finally:
        proc.kill()
        with psycopg.connect(admin_info, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
