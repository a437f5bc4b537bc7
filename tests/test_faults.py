"""Faults: a site that fails a fifth of its answers in every way it can, and a database
whose connections are cut mid-import and mid-crawl. The work completes, and the figures
add up to the input."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from colesbarcodes.db.engine import make_engine, migrate
from colesbarcodes.replica.process import ReplicaProcess
from tests.helpers import (
    PROJECT,
    crawl_command,
    crawl_env,
    dump,
    lookups,
    retry_file_skus,
    write_jsonl,
)
from tests.test_crash_consistency import LOADER, import_inbox, make_product_inbox
from tests.test_crawl import CATALOGUE, PRODUCTS, expected_outcome

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

ANSWERS = {"found", "no_barcode", "not_found", "invalid_barcode"}
FAULT_SETTINGS = [
    "-s", "DOWNLOAD_TIMEOUT=1",
    "-s", "RETRY_TIMES=8",
    "-s", "COLES_MONITOR_MAX_ERRORS=1000",
    "-s", "COLES_GRAPHQL_BATCH=4",  # enough requests to meet every kind of fault
]  # fmt: skip


@pytest.fixture
def faulty_replica() -> Iterator[ReplicaProcess]:
    with ReplicaProcess(products=PRODUCTS, seed=1) as site:
        site.configure(
            error_share=0.2,
            error_kinds=["429", "503", "timeout", "reset"],
            hang_s=3,
            retry_after_s=0,
            seed=5,
        )
        yield site


def test_a_fifth_of_answers_failing_at_random_still_resolves_every_sku(
    database_url: str, tmp_path: Path, faulty_replica: ReplicaProcess
) -> None:
    """429s, 503s, answers that never come in time and dropped connections: each SKU ends
    answered (as it would be by a healthy site) or in a retry file, and nothing else."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    write_jsonl(inbox / "skus.jsonl", [{"sku": p.sku} for p in CATALOGUE])
    engine = make_engine(database_url)
    migrate(engine)
    stats_file = tmp_path / "stats.json"
    proc = subprocess.run(
        crawl_command(inbox, faulty_replica.url, *FAULT_SETTINGS),
        cwd=PROJECT,
        env=crawl_env(database_url, stats_file),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    stats = json.loads(stats_file.read_text())
    faults = faulty_replica.stats()["faults"]
    for kind in ("429", "503", "timeout", "reset"):
        assert faults.get(f"random_{kind}", 0) > 0, faults
    assert stats.get("retry/count", 0) + stats.get("coles/retry_after/count", 0) > 0 or (
        stats.get("downloader/exception_count", 0) > 0
    )
    answered = {sku: (outcome, barcode) for sku, outcome, barcode in lookups(engine)}
    engine.dispose()
    retried = [str(sku) for sku in retry_file_skus(inbox)]
    resolved = {sku for sku, (outcome, _) in answered.items() if outcome in ANSWERS}
    # the figures add up: every SKU resolved or in a retry file, none both, none lost
    assert len(resolved) + len(retried) == PRODUCTS
    assert resolved.isdisjoint(retried)
    for product in CATALOGUE:
        if str(product.sku) in resolved:
            assert answered[str(product.sku)] == expected_outcome(product)
    assert len(resolved) >= PRODUCTS - 3  # eight retries: a SKU failing all nine is rare


def _terminate_backends(
    admin_url: str, database: str, times: int, every: float, proc: subprocess.Popen[str]
) -> list[int]:
    """Cut every connection to ``database`` ``times`` times while ``proc`` runs: each time
    once it is connected again, ``every`` seconds later. Returns how many were cut."""
    cut = []
    others = "FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
    count, terminate = "SELECT count(*) " + others, "SELECT pg_terminate_backend(pid) " + others
    with psycopg.connect(admin_url, autocommit=True) as admin:
        for _ in range(times):
            deadline = time.monotonic() + 30
            while proc.poll() is None and time.monotonic() < deadline:
                if admin.execute(count, (database,)).fetchone() != (0,):
                    break
                time.sleep(0.02)
            time.sleep(every)
            if proc.poll() is not None:
                break
            rows = admin.execute(terminate, (database,))
            cut.append(len(rows.fetchall()))
    return cut


def _admin(database_url: str) -> tuple[str, str]:
    url = make_url(database_url)
    admin = url.set(drivername="postgresql", database="postgres")
    return admin.render_as_string(hide_password=False), str(url.database)


def test_the_loader_carries_on_when_its_database_connections_are_cut(
    postgres_url: str, tmp_path: Path
) -> None:
    from tests.conftest import _truncate_postgres

    env = {"DATABASE_URL": postgres_url}
    make_product_inbox(tmp_path / "reference")
    import_inbox(postgres_url, tmp_path / "reference")
    engine = make_engine(postgres_url)
    expected = dump(engine)
    engine.dispose()
    _truncate_postgres(postgres_url)

    make_product_inbox(tmp_path / "cut")
    admin_url, database = _admin(postgres_url)
    proc = subprocess.Popen(
        [*LOADER, "--inbox", str(tmp_path / "cut")],
        cwd=PROJECT,
        env=crawl_env(postgres_url, tmp_path / "unused.json", **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    cut = _terminate_backends(admin_url, database, times=3, every=0.2, proc=proc)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    assert sum(cut) > 0, "no connection was cut: the loader finished too early"
    assert "retrying" in err + out
    engine = make_engine(postgres_url)
    try:
        assert dump(engine) == expected
    finally:
        engine.dispose()


def test_the_crawl_carries_on_when_its_database_connections_are_cut(
    postgres_url: str, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    write_jsonl(inbox / "skus.jsonl", [{"sku": p.sku} for p in CATALOGUE])
    engine = make_engine(postgres_url)
    migrate(engine)
    engine.dispose()
    admin_url, database = _admin(postgres_url)
    with ReplicaProcess(products=PRODUCTS, seed=1) as site:
        site.configure(delay_ms=60)
        cutter: list[list[int]] = []
        proc = subprocess.Popen(
            crawl_command(
                inbox, site.url, "-s", "CONCURRENT_REQUESTS=8", "-s", "COLES_UPSERT_BATCH_SIZE=20"
            ),
            cwd=PROJECT,
            env=crawl_env(postgres_url, tmp_path / "stats.json"),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        thread = threading.Thread(
            target=lambda: cutter.append(_terminate_backends(admin_url, database, 4, 0.5, proc))
        )
        thread.start()
        log, _ = proc.communicate(timeout=240)
        thread.join()
    assert proc.returncode == 0, log[-3000:]
    assert sum(cutter[0]) > 0, "no connection was cut: the crawl finished too early"
    engine = make_engine(postgres_url)
    stored: dict[str, Any] = {}
    for sku, outcome, barcode in lookups(engine):
        assert sku not in stored, f"{sku} stored twice"
        stored[sku] = (outcome, barcode)
    engine.dispose()
    assert stored == {str(p.sku): expected_outcome(p) for p in CATALOGUE}
