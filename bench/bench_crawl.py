"""Benchmark: the barcode crawl against the replica site on loopback.

20,000 SKUs, half of them already known in the database. Runs, in the same session:

* full: ``scrapy crawl coles_barcodes`` as shipped (prefill, bot-check middleware,
  retries, upsert pipeline writing barcodes and lookups);
* baseline: the same crawl of the same SKUs with the pipelines and the prefill
  switched off (every SKU requested, nothing stored).

Prints requests sent by the full crawl (must equal the unknown SKUs: zero wasted), pages/s
of both and their ratio (goal: full >= 0.8 of the baseline).

    python bench/bench_crawl.py [--skus 20000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from colesbarcodes.db.catalog import apply_lines
from colesbarcodes.db.engine import make_engine, migrate, session_factory
from colesbarcodes.lines import parse_object
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
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        database_url = args.database_url or f"sqlite:///{tmp / 'bench.sqlite3'}"
        catalogue = list(Catalogue.generate(args.skus, seed=7))
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
        skus = [p.sku for p in catalogue]
        unknown = len(skus) - len(known)
        with ReplicaProcess(products=args.skus, seed=7) as site:
            extra = [arg for setting in args.set for arg in ("-s", setting)]
            full = crawl(
                write_inbox(tmp / "full", skus), site.url, database_url, tmp / "full.json", *extra
            )
            sent = int(site.stats()["by_kind"]["graphql"])
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
    print(f"SKUs: {len(skus):,}, known before the crawl: {len(known):,}, unknown: {unknown:,}")
    print(
        f"full crawl: {sent:,} API requests sent ({'zero wasted' if sent == unknown else f'{sent - unknown:+,} vs unknown SKUs'}), "
        f"{full_rate:,.0f} pages/s, {full.get('coles/stored', 0):,} outcomes stored"
    )
    print(f"baseline (no prefill, no pipelines): {base_sent:,} requests, {base_rate:,.0f} pages/s")
    print(f"ratio full/baseline pages/s: {full_rate / base_rate:.2f} (goal >= 0.80)")


if __name__ == "__main__":
    main()
