"""Benchmark: the prefill map for one inbox file, against the old approach, same database.

Builds a throwaway PostgreSQL database with 1,000,000 Coles products (half with a barcode),
then times, for a 30,000-SKU file:

* new: ``colesbarcodes.db.lookups.known_barcodes`` — one query for exactly the file's SKUs;
* old: load every product of the company (ORM objects, like the old Django command),
  then loop in Python over them, last row wins.

Prints both times and the speed-up (goal: >= 20x, and the new map under 1 s).

    python bench/bench_prefill.py [--products 1000000] [--skus 30000]
"""

from __future__ import annotations

import argparse
import random
import time
import uuid
from typing import TYPE_CHECKING

import psycopg
from sqlalchemy import select
from stdnum import ean

from colesbarcodes.db.engine import make_engine, migrate, session_factory
from colesbarcodes.db.lookups import known_barcodes
from colesbarcodes.db.models import CompanySku, Product

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


def fill(url: str, products: int) -> None:
    """COPY ``products`` rows into products and company_skus (SKU = 1,000,000 + id)."""
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY products (id, name, barcode, barcode_scope, created_at, updated_at) FROM STDIN"
        ) as copy:
            for pid in range(1, products + 1):
                barcode = None
                if pid % 2 == 0:
                    body = f"93{pid:010d}"
                    barcode = body + ean.calc_check_digit(body)
                copy.write_row(
                    (
                        pid,
                        f"Product {pid}",
                        barcode,
                        "global" if barcode else None,
                        "2026-11-24",
                        "2026-11-24",
                    )
                )
        with cur.copy(
            "COPY company_skus (id, company, sku, product_id, created_at) FROM STDIN"
        ) as copy:
            for pid in range(1, products + 1):
                copy.write_row((pid, "coles", str(1_000_000 + pid), pid, "2026-11-24"))
        cur.execute("SELECT setval(pg_get_serial_sequence('products', 'id'), %s)", (products,))
        cur.execute("SELECT setval(pg_get_serial_sequence('company_skus', 'id'), %s)", (products,))
        cur.execute("ANALYZE products; ANALYZE company_skus")
        conn.commit()


def old_map(session: Session, skus: list[str]) -> dict[str, str]:
    """The old tool: load every product of the company (as ORM objects, as its Django
    command did), then loop in Python building the map, last row wins."""
    wanted = set(skus)
    result: dict[str, str | None] = {}
    rows = session.execute(
        select(Product, CompanySku.sku)
        .join(CompanySku, CompanySku.product_id == Product.id)
        .where(CompanySku.company == "coles")
    )
    for product, sku in rows:
        result[sku] = product.barcode
    return {sku: barcode for sku, barcode in result.items() if barcode and sku in wanted}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--products", type=int, default=1_000_000)
    parser.add_argument("--skus", type=int, default=30_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()

    name = f"colesbarcodes_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.postgres_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = args.postgres_url.rsplit("/", 1)[0] + "/" + name
    engine = make_engine(url)
    try:
        migrate(engine)
        started = time.perf_counter()
        fill(url, args.products)
        print(f"database: {args.products:,} products in {time.perf_counter() - started:.1f}s")
        rng = random.Random(1)
        skus = [str(1_000_000 + rng.randrange(1, args.products + 1)) for _ in range(args.skus)]
        factory = session_factory(engine)
        new_times, old_times = [], []
        for _ in range(args.repeat):
            with factory() as session:
                started = time.perf_counter()
                new = known_barcodes(session, "coles", skus)
                new_times.append(time.perf_counter() - started)
            with factory() as session:
                started = time.perf_counter()
                old = old_map(session, skus)
                old_times.append(time.perf_counter() - started)
            assert new == old, "both maps must agree"
        best_new, best_old = min(new_times), min(old_times)
        print(
            f"prefill map, one query for the file's {len(set(skus)):,} SKUs: {best_new:.3f}s ({len(new):,} known)"
        )
        print(f"old approach, all products of the company + Python loop: {best_old:.3f}s")
        print(
            f"speed-up: {best_old / best_new:.1f}x (goal >= 20x; new map under 1 s: {'yes' if best_new < 1 else 'no'})"
        )
    finally:
        engine.dispose()
        with psycopg.connect(args.postgres_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
