"""Two loaders and two crawls at once, on the same inboxes and the same database: each file
is processed by exactly one of them, nobody deadlocks, and no write is lost."""

from __future__ import annotations

import subprocess
from collections import Counter
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import text

from colesbarcodes.db.engine import make_engine, migrate
from colesbarcodes.replica.process import ReplicaProcess
from tests.helpers import (
    PROJECT,
    canonical_rows,
    crawl_command,
    crawl_env,
    dump,
    lookups,
    write_jsonl,
)
from tests.test_crash_consistency import LOADER, import_inbox
from tests.test_crawl import CATALOGUE, PRODUCTS, expected_outcome

if TYPE_CHECKING:
    from pathlib import Path


def make_product_inbox(root: Path) -> None:
    """Six stores' files over overlapping SKUs (1 to 1,400: none of them the crawl's)."""
    root.mkdir(parents=True)
    for n in range(6):
        rows = canonical_rows(
            f"{601 + n:04d}",
            range(1 + 200 * n, 401 + 200 * n),
            barcode_every=2 + n % 2,
            price=1.0 + n,
        )
        write_jsonl(root / f"coles_store-{601 + n:04d}.jsonl", rows, mtime=1_700_000_000 + n)


def make_enrichment_inbox(root: Path) -> None:
    """Four files of the replica's SKUs, each SKU in exactly one."""
    root.mkdir(parents=True)
    skus = [p.sku for p in CATALOGUE]
    for n in range(4):
        write_jsonl(root / f"part{n}.jsonl", [{"sku": s} for s in skus[n::4]])


@pytest.mark.slow
def test_two_loaders_and_two_crawls_at_once_share_the_work_and_lose_nothing(
    database_url: str, tmp_path: Path
) -> None:
    # What the loaders alone make of the product files, for comparison.
    reference = f"sqlite:///{tmp_path / 'reference.sqlite3'}"
    make_product_inbox(tmp_path / "reference")
    import_inbox(reference, tmp_path / "reference")
    engine = make_engine(reference)
    expected = dump(engine)
    engine.dispose()

    engine = make_engine(database_url)
    migrate(engine)
    engine.dispose()
    products, enrichment = tmp_path / "product_inbox", tmp_path / "enrichment_inbox"
    make_product_inbox(products)
    make_enrichment_inbox(enrichment)
    with ReplicaProcess(products=PRODUCTS, seed=1) as site:
        site.configure(delay_ms=10)
        commands = [[*LOADER, "--inbox", str(products)] for _ in range(2)]
        commands += [
            crawl_command(enrichment, site.url, "-s", "CONCURRENT_REQUESTS=8") for _ in range(2)
        ]
        procs = [
            subprocess.Popen(
                command,
                cwd=PROJECT,
                env=crawl_env(database_url, tmp_path / f"stats{n}.json"),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for n, command in enumerate(commands)
        ]
        logs = [proc.communicate(timeout=300)[0] for proc in procs]
        asked = site.stats()["by_sku"]
    for proc, log in zip(procs, logs, strict=True):
        assert proc.returncode == 0, log[-3000:]

    # each product file imported once, by one loader, and archived
    assert len(list((products / "archive").glob("*.jsonl"))) == 6
    assert not list(products.glob("*.jsonl")) and not list(enrichment.glob("*.jsonl"))
    engine = make_engine(database_url)
    try:
        state = dump(engine)
        stored = lookups(engine)
    finally:
        engine.dispose()
    assert [(name, status) for name, status, *_ in state["files"]] == [
        (name, status) for name, status, *_ in expected["files"]
    ]
    # nothing the loaders wrote was lost or doubled by the crawls' writes, and vice versa
    loader_products = [p for p in state["products"] if all(int(s) < 1_000_000 for _, s in p[0])]
    assert loader_products == expected["products"]
    assert state["prices"] == expected["prices"]
    assert state["history"] == expected["history"]
    per_sku = Counter(sku for sku, _, _ in stored)
    left = sorted(str(p.relative_to(enrichment)) for p in enrichment.rglob("*"))
    assert stored, f"no lookup stored; enrichment inbox: {left}; crawl logs:\n" + "\n".join(
        log[-4000:] for log in logs[2:]
    )
    assert set(per_sku.values()) == {1}, "a SKU was looked up by both crawls"
    assert {sku: (o, b) for sku, o, b in stored} == {
        str(p.sku): expected_outcome(p) for p in CATALOGUE
    }
    assert all(n == 1 for n in asked.values()), "the site was asked twice for a SKU"


def test_a_connection_closed_by_another_process_mid_crawl_loses_no_sqlite_outcome(
    tmp_path: Path,
) -> None:
    """SQLite's last connection to a WAL database to close checkpoints and deletes the
    log: it is the last when no other process holds a lock on the file. A crawl making a
    second engine on the file (its prefill's) dropped the crawl's locks, so a process
    closing its connection mid-crawl (a loader that ended, a crawl with nothing to do)
    deleted the log under the crawl: what the crawl committed after that went to the
    deleted log, and its inbox file was finished all the same (one run in 35 of the test
    above, under load)."""
    url = f"sqlite:///{tmp_path / 'crawl.sqlite3'}"
    engine = make_engine(url)
    migrate(engine)  # this process holds a connection, as the loaders of the test above do
    enrichment = tmp_path / "enrichment_inbox"
    enrichment.mkdir()
    wanted = list(CATALOGUE)[:48]
    write_jsonl(enrichment / "skus.jsonl", [{"sku": p.sku} for p in wanted])
    with ReplicaProcess(products=PRODUCTS, seed=1) as site:
        site.configure(delay_ms=1000)  # the crawl waits for the site with its engines made
        proc = subprocess.Popen(
            crawl_command(enrichment, site.url),
            cwd=PROJECT,
            env=crawl_env(url, tmp_path / "stats.json"),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if "Prefill for skus.jsonl" in line:
                break
        # Another process ends (its connection closes) and the next one starts (its
        # connection stays open until the crawl has ended), while the crawl's answers come.
        engine.dispose()
        with engine.connect() as held:
            held.execute(text("SELECT count(*) FROM lookups"))
            log = "".join(seen) + proc.communicate(timeout=120)[0]
    assert proc.returncode == 0, log[-3000:]
    assert not list(enrichment.glob("*.jsonl")), "the file was finished"
    try:
        stored = lookups(engine)
    finally:
        engine.dispose()
    assert {sku: (o, b) for sku, o, b in stored} == {
        str(p.sku): expected_outcome(p) for p in wanted
    }, log[-3000:]
