"""Benchmark: the barcode crawl against the replica site on loopback.

20,000 SKUs, half of them already known in the database. Runs, in the same session:

* full: ``scrapy crawl coles_barcodes`` as shipped (prefill, bot-check middleware,
  retries, upsert pipeline writing barcodes and lookups);
* baseline: the same crawl of the same SKUs with the pipelines and the prefill
  switched off (every SKU requested, nothing stored).

Prints the GraphQL documents the full crawl sent and the SKUs they carried (every unknown SKU
asked for once: zero wasted), unknown SKUs resolved per request (goal: at least 20 with the
default ``COLES_GRAPHQL_BATCH``), the SKUs an hour one exit resolves at the polite pace public
scrapers keep (about one request a second), pages/s of both crawls and their ratio (goal:
full >= 0.8 of the baseline).

With ``--workers 1,2,4``, instead: for each count N, the SKUs are fed into a shared
frontier in Redis (``COLES_TEST_REDIS_URL``, default redis://127.0.0.1:6379/0, under a
throwaway key) and N ``scrapy crawl coles_barcodes`` processes share it, each run on a
fresh SQLite database with the same half of the SKUs known. Prints requests sent
(must still equal the unknown SKUs) and pages/s over the wall-clock time from the first
process's start to the last one's end (process start-up included).

    python bench/bench_crawl.py [--skus 20000] [--database-url URL]
    python bench/bench_crawl.py --workers 1,2,4 [--skus 6000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from colesbarcodes.db.catalog import apply_lines
from colesbarcodes.db.engine import make_engine, migrate, session_factory
from colesbarcodes.frontier.stream import Frontier
from colesbarcodes.inbox.lines import parse_object
from colesbarcodes.replica.catalogue import Catalogue
from colesbarcodes.replica.process import ReplicaProcess

PROJECT = Path(__file__).resolve().parents[1]
SPEED = [
    "-s", "DOWNLOAD_DELAY=0",
    "-s", "AUTOTHROTTLE_ENABLED=False",
    "-s", "CONCURRENT_REQUESTS=32",
    "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=32",
    "-s", "LOG_LEVEL=WARNING",
]  # fmt: skip


def crawl(
    inbox: Path, site: str, database_url: str, stats_file: Path, *extra: str
) -> dict[str, object]:
    command = [sys.executable, "-m", "scrapy", "crawl", "coles_barcodes", "-a", f"inbox={inbox}"]
    command += ["-s", f"COLES_BASE_URL={site}", *SPEED, *extra]
    env = {**os.environ, "DATABASE_URL": database_url, "COLES_STATS_FILE": str(stats_file)}
    subprocess.run(command, cwd=PROJECT, env=env, check=True)
    stats: dict[str, object] = json.loads(stats_file.read_text())
    return stats


def write_inbox(root: Path, skus: list[int]) -> Path:
    root.mkdir(parents=True)
    with (root / "skus.jsonl").open("w") as out:
        for sku in skus:
            out.write(json.dumps({"sku": sku}) + "\n")
    return root


def seed_known(database_url: str, catalogue: list[Any]) -> int:
    """Store the barcodes of every other product: the prefill skips those."""
    known = [p for p in catalogue[::2] if p.expected_gtin]
    engine = make_engine(database_url)
    migrate(engine)
    lines = []
    for number, product in enumerate(known, 1):
        line = parse_object({"sku": product.sku, "barcode": product.expected_gtin})
        assert line is not None
        lines.append((number, line))
    with session_factory(engine).begin() as session:
        apply_lines(session, lines, source="bench")
    engine.dispose()
    return len(known)


def run_workers(count: int, skus: int, tmp: Path, site: ReplicaProcess, extra: list[str]) -> None:
    """``count`` crawl processes on one frontier; prints requests and pages/s."""
    redis_url = os.environ.get("COLES_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    folder = tmp / f"workers-{count}"
    folder.mkdir()
    database_url = f"sqlite:///{folder / 'bench.sqlite3'}"
    catalogue = list(Catalogue.generate(skus, seed=7))
    known = seed_known(database_url, catalogue)
    frontier = Frontier.from_url(redis_url, f"colesbarcodes-bench:{uuid.uuid4().hex[:10]}")
    try:
        frontier.feed({"sku": str(p.sku), "file": "bench.jsonl"} for p in catalogue)
        site.reset_stats()
        settings = [
            "-s", f"COLES_FRONTIER_URL={redis_url}",
            "-s", f"COLES_FRONTIER_KEY={frontier.key}",
            "-s", "COLES_FRONTIER_POLL=0.2",
        ]  # fmt: skip
        command = [sys.executable, "-m", "scrapy", "crawl", "coles_barcodes"]
        command += ["-s", f"COLES_BASE_URL={site.url}", *SPEED, *settings, *extra]
        started = time.monotonic()
        processes = []
        for number in range(count):
            env = {
                **os.environ,
                "DATABASE_URL": database_url,
                "COLES_STATS_FILE": str(folder / f"stats-{number}.json"),
            }
            worker = [*command, "-a", f"inbox={folder / f'spill-{number}'}"]
            processes.append(subprocess.Popen(worker, cwd=PROJECT, env=env))
        for process in processes:
            if process.wait() != 0:
                raise SystemExit(f"a worker exited with status {process.returncode}")
        wall = time.monotonic() - started
        left = frontier.remaining()
    finally:
        frontier.delete()
        frontier.close()
    sent = int(site.stats()["by_kind"]["graphql"])
    stats = [json.loads((folder / f"stats-{n}.json").read_text()) for n in range(count)]
    crawled = [float(s["elapsed_time_seconds"]) for s in stats]
    db_write = sum(int(s.get("coles/db_write_ms", 0)) for s in stats) / 1000
    unknown = skus - known
    print(
        f"{count} worker{'s' if count > 1 else ''}: {sent:,} API requests for {unknown:,} unknown "
        f"SKUs ({'zero wasted' if sent == unknown else f'{sent - unknown:+,}'}), "
        f"{left} left in the frontier; wall {wall:.1f}s: {sent / wall:,.0f} pages/s "
        f"(longest crawl {max(crawled):.1f}s: {sent / max(crawled):,.0f} pages/s; "
        f"{db_write:.1f}s writing outcomes, all workers together)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--skus", type=int, default=20_000)
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    parser.add_argument(
        "-s",
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra Scrapy setting for the full crawl",
    )
    parser.add_argument(
        "--workers",
        metavar="N[,N...]",
        help="crawl processes sharing a Redis frontier, e.g. 1,2,4 (one run per count)",
    )
    args = parser.parse_args()

    if args.workers:
        counts = [int(n) for n in args.workers.split(",")]
        extra = [arg for setting in args.set for arg in ("-s", setting)]
        print(f"SKUs: {args.skus:,} (half known before each run), {os.cpu_count()} CPU cores")
        with (
            tempfile.TemporaryDirectory() as tmp_name,
            ReplicaProcess(products=args.skus, seed=7) as site,
        ):
            for count in counts:
                run_workers(count, args.skus, Path(tmp_name), site, extra)
        return

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        database_url = args.database_url or f"sqlite:///{tmp / 'bench.sqlite3'}"
        catalogue = list(Catalogue.generate(args.skus, seed=7))
        known = seed_known(database_url, catalogue)
        skus = [p.sku for p in catalogue]
        unknown = len(skus) - known
        with ReplicaProcess(products=args.skus, seed=7) as site:
            extra = [arg for setting in args.set for arg in ("-s", setting)]
            full = crawl(
                write_inbox(tmp / "full", skus), site.url, database_url, tmp / "full.json", *extra
            )
            site_stats = site.stats()
            sent = int(site_stats["by_kind"]["graphql"])
            asked = int(site_stats.get("graphql_products", sent))
            site.reset_stats()
            base = crawl(
                write_inbox(tmp / "base", skus),
                site.url,
                database_url,
                tmp / "base.json",
                "-s", "PREFILL_ENABLED=False",
                "-s", "ITEM_PIPELINES={}",
            )  # fmt: skip
            base_sent = int(site.stats()["by_kind"]["graphql"])

    def rate(stats: dict[str, object], pages: int) -> float:
        return pages / float(stats["elapsed_time_seconds"])  # type: ignore[arg-type]

    full_rate, base_rate = rate(full, sent), rate(base, base_sent)
    print(f"SKUs: {len(skus):,}, known before the crawl: {known:,}, unknown: {unknown:,}")
    wasted = "zero wasted" if asked == unknown else f"{asked - unknown:+,} vs unknown SKUs"
    print(
        f"full crawl: {sent:,} API requests carrying {asked:,} SKUs ({wasted}), "
        f"{full_rate:,.0f} pages/s, {full.get('coles/stored', 0):,} outcomes stored"
    )
    per_request = unknown / sent if sent else 0.0
    print(
        f"unknown SKUs resolved per product request: {per_request:.1f} (goal >= 20); "
        f"one exit at ~1 request/s resolves {per_request * 3600:,.0f} SKUs an hour"
    )
    print(f"baseline (no prefill, no pipelines): {base_sent:,} requests, {base_rate:,.0f} pages/s")
    print(f"ratio full/baseline pages/s: {full_rate / base_rate:.2f} (goal >= 0.80)")


if __name__ == "__main__":
    main()
