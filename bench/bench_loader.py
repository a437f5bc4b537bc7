"""Benchmark: `coles-loader update --products` into PostgreSQL against a raw COPY baseline.

Generates a realistic inbox (default 1,000,000 lines: ~30,000 SKUs over ~35 stores, half
with barcodes, a few % duplicate and bad lines), then, in the same run and on the same
throwaway PostgreSQL database server:

* baseline: read and parse the same files, COPY the rows into a staging table and move them
  with one ``INSERT .. ON CONFLICT`` into a (store, sku)-keyed table;
* loader: the real import (claim, parse, validate, merge rules, prices, history, ledger).

Each runs in its own process so its peak memory (max RSS) is its own. Prints lines/s of
both, their ratio (goal: >= 0.5) and the loader's peak memory (goal: < 500 MB).

    python bench/bench_loader.py [--lines 1000000] [--postgres-url postgresql://postgres@127.0.0.1/postgres]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson
import psycopg
from stdnum import ean

HERE = Path(__file__).resolve()


def generate(root: Path, lines: int, skus: int, stores: int, seed: int = 1) -> int:
    """One file per store (as listing scrapes deliver them); returns lines written."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    catalogue = []
    for index in range(skus):
        sku = 1_000_000 + index * 7
        barcode = None
        if index % 2 == 0:
            body = f"93{rng.randrange(10**10):010d}"
            barcode = body + ean.calc_check_digit(body)
        catalogue.append(
            (
                sku,
                f"Product {index}",
                f"Brand {index % 500}",
                f"{rng.choice([100, 250, 500, 1000])}g",
                barcode,
            )
        )
    per_store = lines // stores
    written = 0
    for store_index in range(stores):
        store = f"{584 + store_index:04d}"
        path = root / f"coles_store-{store}.jsonl"
        with path.open("wb") as out:
            for n in range(per_store):
                sku, name, brand, size, barcode = (
                    catalogue[(n * 13 + store_index) % skus] if n < skus else rng.choice(catalogue)
                )
                roll = rng.random()
                if roll < 0.01:
                    out.write(b'{"sku": ' + str(sku).encode() + b', "name": "broken\n')
                    written += 1
                    continue
                row = {
                    "store_id": store,
                    "sku": sku,
                    "name": name,
                    "brand": brand,
                    "size": size,
                    "price": round(1 + (sku % 997) / 10 + (store_index % 3) * 0.1, 2),
                    "was_price": None,
                    "unit_price": round((sku % 997) / 25, 2),
                    "barcode": barcode if barcode and rng.random() < 0.9 else None,
                    "url": f"https://www.coles.com.au/product/p-{sku}",
                    "scraped_at": "2026-11-23T06:00:00Z",
                }
                data = orjson.dumps(row) + b"\n"
                out.write(data)
                written += 1
                if roll > 0.97:  # a duplicate line
                    out.write(data)
                    written += 1
    return written


BASELINE_SQL = """
CREATE UNLOGGED TABLE IF NOT EXISTS bench_prices (
    store_id text, sku text, name text, brand text, size text, price numeric(12,3),
    was_price numeric(12,3), unit_price numeric(12,3), barcode text, url text,
    last_seen timestamptz, PRIMARY KEY (store_id, sku));
CREATE TEMP TABLE bench_stage (
    store_id text, sku text, name text, brand text, size text, price numeric(12,3),
    was_price numeric(12,3), unit_price numeric(12,3), barcode text, url text, last_seen timestamptz);
"""


def run_baseline(root: Path, url: str) -> dict[str, float]:
    """Raw COPY of the same rows into a staging table plus one INSERT .. ON CONFLICT."""
    started = time.perf_counter()
    lines = 0
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.execute(BASELINE_SQL)
        with cur.copy("COPY bench_stage FROM STDIN") as copy:
            for path in sorted(root.glob("*.jsonl")):
                with path.open("rb") as handle:
                    for raw in handle:
                        lines += 1
                        try:
                            r = orjson.loads(raw)
                        except orjson.JSONDecodeError:
                            continue
                        copy.write_row(
                            (
                                r["store_id"],
                                str(r["sku"]),
                                r["name"],
                                r["brand"],
                                r["size"],
                                r["price"],
                                r["was_price"],
                                r["unit_price"],
                                r["barcode"],
                                r["url"],
                                r["scraped_at"],
                            )
                        )
        cur.execute(
            "INSERT INTO bench_prices SELECT DISTINCT ON (store_id, sku) * FROM bench_stage "
            "ORDER BY store_id, sku ON CONFLICT (store_id, sku) DO UPDATE SET price = excluded.price, "
            "last_seen = excluded.last_seen"
        )
        conn.commit()
    return {"lines": lines, "seconds": time.perf_counter() - started}


def run_loader(root: Path, url: str, batch_size: int) -> dict[str, float]:
    from colesbarcodes.db.engine import make_engine, migrate
    from colesbarcodes.inbox import Inbox
    from loaders.importer import ImportOptions
    from loaders.update import LogProgress, run_cycle

    engine = make_engine(url)
    migrate(engine)
    started = time.perf_counter()
    report = run_cycle(
        engine,
        Inbox(root),
        ImportOptions(batch_size=batch_size),
        LogProgress(every=1e9),
        post=False,
    )
    imported = time.perf_counter() - started
    from loaders.update import post_process

    post_started = time.perf_counter()
    post_process(engine)
    return {
        "lines": report.lines,
        "seconds": imported,
        "post_process_seconds": time.perf_counter() - post_started,
        "quarantined": report.quarantined,
        "products": report.stats().products_created,
    }


def _child(mode: str, root: Path, url: str, batch_size: int) -> dict[str, float]:
    proc = subprocess.run(
        [
            sys.executable,
            str(HERE),
            f"--child={mode}",
            "--root",
            str(root),
            "--url",
            url,
            "--batch-size",
            str(batch_size),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--skus", type=int, default=30_000)
    parser.add_argument("--stores", type=int, default=35)
    parser.add_argument("--batch-size", type=int, default=50_000)
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--child", choices=["baseline", "loader"], help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        result = (
            run_baseline(args.root, args.url)
            if args.child == "baseline"
            else run_loader(args.root, args.url, args.batch_size)
        )
        result["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return

    name = f"colesbarcodes_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.postgres_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = args.postgres_url.rsplit("/", 1)[0] + "/" + name
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "inbox"
            started = time.perf_counter()
            written = generate(root, args.lines, args.skus, args.stores)
            print(
                f"generated {written:,} lines in {len(list(root.glob('*.jsonl')))} files "
                f"({sum(p.stat().st_size for p in root.glob('*.jsonl')) / 1e6:.0f} MB) in {time.perf_counter() - started:.1f}s"
            )
            baseline = _child("baseline", root, url, args.batch_size)
            loader = _child("loader", root, url, args.batch_size)
    finally:
        with psycopg.connect(args.postgres_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    base_rate = baseline["lines"] / baseline["seconds"]
    rate = loader["lines"] / loader["seconds"]
    print(
        f"baseline (COPY + one INSERT .. ON CONFLICT): {base_rate:>10,.0f} lines/s  "
        f"({baseline['seconds']:.1f}s, peak {baseline['max_rss_mb']:.0f} MB)"
    )
    print(
        f"coles-loader update --products:              {rate:>10,.0f} lines/s  "
        f"({loader['seconds']:.1f}s, peak {loader['max_rss_mb']:.0f} MB; "
        f"post-processing {loader['post_process_seconds']:.1f}s)"
    )
    ratio = rate / base_rate
    print(
        f"ratio loader/baseline: {ratio:.2f} (goal >= 0.50)  peak memory: {loader['max_rss_mb']:.0f} MB (goal < 500)"
    )
    print(f"quarantined lines: {loader['quarantined']:,}, products: {loader['products']:,}")


if __name__ == "__main__":
    main()
