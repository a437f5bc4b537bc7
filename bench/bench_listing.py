"""Benchmark: the product-listing crawls against the replica site on loopback.

Coles: 30,000 products (one store). Runs, in the same session, alternating:

* listing: ``scrapy crawl coles_products`` as shipped (category walk, parsing, ad and
  repeat filtering, canonical lines, the per-store feed written and published);
* baseline: a plain Scrapy spider (:class:`PlainPagesSpider`, this file, through
  ``scrapy runspider``) fetching exactly the same listing pages, with the same project
  settings, and doing nothing with them: no parsing, no items.

and, for reference, the same plain spider yielding one empty item per product row (what
Scrapy's item machinery alone costs). A first, unmeasured listing crawl warms the replica's
page cache and gives the list of pages. Prints products/s (best of ``--rounds``) and the
ratios (goal: the listing crawl >= 0.8 of the baseline).

With ``--latency-ms N`` the replica answers every page N ms late, as a real site does:
the crawls then wait on the network, not on the CPU (on loopback, with no latency, both
are CPU-bound and the listing crawl's own work, parsing each page included, is measured).

Woolworths (``--retailers woolworths``, or both by default): ``scrapy crawl
woolworths_products`` against the replica's Woolworths (its products derived from the same
catalogue: some 18,000 for 30,000 Coles products, in pages of 36 rows of the real sample's
size) and, alternating, the plain spider posting exactly the same listing requests (the
bodies the crawl sent, read back from the replica's count) and doing nothing with them.

    python bench/bench_listing.py [--products 30000] [--rounds 3] [--latency-ms 0]
        [--retailers coles,woolworths]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import scrapy

from colesbarcodes.replica.catalogue import Catalogue
from colesbarcodes.replica.process import ReplicaProcess
from colesbarcodes.replica.woolworths import WoolworthsCatalogue
from colesbarcodes.site.woolworths import LISTING_PATH, Department, listing_body

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from scrapy.http import Response

PROJECT = Path(__file__).resolve().parents[1]
STORE = "0584"
SPEED = [
    "-s", "DOWNLOAD_DELAY=0",
    "-s", "AUTOTHROTTLE_ENABLED=False",
    "-s", "CONCURRENT_REQUESTS=32",
    "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=32",
    "-s", "LOG_LEVEL=WARNING",
    "-s", "COLES_RUN_LEDGER_ENABLED=False",
]  # fmt: skip


# The listing spider's own item settings (its custom_settings), for the reference row.
ITEM_TUNING = [
    "-s", "LOG_FORMATTER=colesbarcodes.logformatter.QuietItemsLogFormatter",
    "-s", "CONCURRENT_ITEMS=4",
    "-s", f"SCRAPER_SLOT_MAX_ACTIVE_SIZE={32 * 1024 * 1024}",
]  # fmt: skip


class PlainPagesSpider(scrapy.Spider):
    """The baseline: the given URLs, fetched and thrown away. With ``-a items=1`` (the
    reference row), one empty item per product row instead: Scrapy's own per-item cost."""

    name = "plain_pages"

    def __init__(self, urls: str = "", items: str = "", post: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.urls = Path(urls).read_text().split("\n") if urls else []
        self.items = bool(items)
        self.post = post  # a URL: each line of ``urls`` is a JSON body posted to it

    async def start(self) -> AsyncIterator[Any]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        for line in filter(None, self.urls):
            if self.post:
                yield scrapy.Request(
                    self.post,
                    method="POST",
                    body=line,
                    headers=headers,
                    dont_filter=True,
                    callback=self.ignore,
                )
            else:
                yield scrapy.Request(line, dont_filter=True, callback=self.ignore)

    def ignore(self, response: Response) -> Iterator[dict[str, int]]:
        if self.items:
            for n in range(response.body.count(b'"_type":"PRODUCT"')):
                yield {"n": n}


def run(command: list[str], stats_file: Path) -> dict[str, Any]:
    """Run a crawl; its stats, plus ``cpu_seconds`` (the whole process, start-up included)."""
    env = {**os.environ, "COLES_STATS_FILE": str(stats_file)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, cwd=PROJECT, env=env, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    stats: dict[str, Any] = json.loads(stats_file.read_text())
    stats["cpu_seconds"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return stats


def listing_crawl(site: str, inbox: Path, stats_file: Path) -> dict[str, Any]:
    command = [sys.executable, "-m", "scrapy", "crawl", "coles_products"]
    command += ["-a", f"stores={STORE}", "-a", f"inbox={inbox}", "-s", f"COLES_BASE_URL={site}"]
    return run([*command, *SPEED], stats_file)


def woolworths_crawl(site: str, inbox: Path, stats_file: Path) -> dict[str, Any]:
    command = [sys.executable, "-m", "scrapy", "crawl", "woolworths_products"]
    command += ["-a", f"inbox={inbox}", "-s", f"WOOLWORTHS_BASE_URL={site}"]
    return run([*command, *SPEED], stats_file)


def woolworths_bodies(site: ReplicaProcess) -> list[str]:
    """The listing bodies the last Woolworths crawl posted, from the replica's own count."""
    bodies = []
    for node, pages in site.woolworths_stats()["listings"].items():
        for page in pages:
            bodies.append(listing_body(Department(node, "", ""), int(page)).decode())
    return bodies


def baseline_crawl(urls: Path, stats_file: Path, *extra: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "scrapy", "runspider", __file__, "-a", f"urls={urls}"]
    return run([*command, *SPEED, *extra], stats_file)


def pages_asked(site: ReplicaProcess) -> list[str]:
    """The listing URLs the last crawl asked for, from the replica's own count."""
    build_id = site.config()["build_id"]
    urls = []
    for path, pages in site.stats()["listings"].items():
        for page in pages:
            urls.append(
                f"{site.url}/_next/data/{build_id}/en/browse/{path}.json"
                f"?slug={path}&page={page}&storeId={STORE}"
            )
    return urls


def show(name: str, runs: list[dict[str, Any]], products: int) -> float:
    times = [float(run["elapsed_time_seconds"]) for run in runs]
    cpu = [float(run["cpu_seconds"]) for run in runs]
    rate = products / min(times)
    print(
        f"{name}: {', '.join(f'{t:.2f}' for t in times)} s crawling "
        f"(CPU {', '.join(f'{c:.1f}' for c in cpu)} s with start-up) "
        f"-> best {rate:,.0f} products/s"
    )
    return rate


def bench_coles(site: ReplicaProcess, tmp: Path, args: argparse.Namespace) -> None:
    """The Coles listing crawl of one store against the plain crawl of its pages."""
    warm = listing_crawl(site.url, tmp / "warm", tmp / "warm.json")
    products = int(warm["listing/products"])
    catalogue = Catalogue.generate(args.products, seed=7)
    assert products == sum(p.status == "active" for p in catalogue), "a product is missing"
    urls = tmp / "urls.txt"
    pages = pages_asked(site)
    urls.write_text("\n".join(pages) + "\n")
    listing_runs, base_runs, item_runs = [], [], []
    for round_ in range(args.rounds):
        base = baseline_crawl(urls, tmp / f"base{round_}.json")
        assert base["response_received_count"] >= len(pages), base
        base_runs.append(base)
        items = baseline_crawl(urls, tmp / f"items{round_}.json", "-a", "items=1", *ITEM_TUNING)
        assert items["item_scraped_count"] == products, items
        item_runs.append(items)
        full = listing_crawl(site.url, tmp / f"inbox{round_}", tmp / f"full{round_}.json")
        assert int(full["listing/products"]) == products, full
        assert len(list((tmp / f"inbox{round_}").glob("*.jsonl"))) == 1
        listing_runs.append(full)
    print(
        f"Coles: {products:,} products of one store, {len(pages):,} listing pages, "
        f"replica latency {args.latency_ms:g} ms"
    )
    listing_rate = show("listing crawl", listing_runs, products)
    base_rate = show("baseline (same pages, no processing)", base_runs, products)
    items_rate = show("reference (same pages, one empty item a product)", item_runs, products)
    print(f"ratio listing/baseline: {listing_rate / base_rate:.2f} (goal >= 0.80)")
    print(f"ratio reference/baseline: {items_rate / base_rate:.2f} (Scrapy's per-item cost alone)")


def bench_woolworths(site: ReplicaProcess, tmp: Path, args: argparse.Namespace) -> None:
    """The Woolworths listing crawl against the plain crawl posting the same requests."""
    base_url = site.woolworths_url
    site.woolworths_reset_stats()
    warm = woolworths_crawl(base_url, tmp / "ww-warm", tmp / "ww-warm.json")
    products = int(warm["listing/products"])
    catalogue = WoolworthsCatalogue.from_coles(Catalogue.generate(args.products, seed=7))
    shelf = sum(
        len(catalogue.shelf(node))
        for node in site.woolworths_stats()["listings"]  # the departments walked
    )
    assert products == shelf, "a product is missing"
    bodies = tmp / "ww-bodies.txt"
    pages = woolworths_bodies(site)
    bodies.write_text("\n".join(pages) + "\n")
    post = ["-a", f"post={base_url}{LISTING_PATH}"]
    listing_runs, base_runs = [], []
    for round_ in range(args.rounds):
        base = baseline_crawl(bodies, tmp / f"ww-base{round_}.json", *post)
        assert base["response_received_count"] >= len(pages), base
        base_runs.append(base)
        full = woolworths_crawl(base_url, tmp / f"ww-inbox{round_}", tmp / f"ww-full{round_}.json")
        assert int(full["listing/products"]) == products, full
        assert len(list((tmp / f"ww-inbox{round_}").glob("*.jsonl"))) == 1
        listing_runs.append(full)
    print(
        f"Woolworths: {products:,} products online, {len(pages):,} listing pages, "
        f"replica latency {args.latency_ms:g} ms"
    )
    listing_rate = show("listing crawl (woolworths_products)", listing_runs, products)
    base_rate = show("baseline (same requests, no processing)", base_runs, products)
    print(f"ratio listing/baseline: {listing_rate / base_rate:.2f} (goal >= 0.80)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--products", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--latency-ms", type=float, default=0.0, help="the replica's delay before each answer"
    )
    parser.add_argument(
        "--retailers",
        default="coles,woolworths",
        help="the listing crawls to measure, a comma list (default: %(default)s)",
    )
    args = parser.parse_args()
    retailers = [r.strip() for r in args.retailers.split(",") if r.strip()]
    unknown = set(retailers) - {"coles", "woolworths"}
    if unknown:
        parser.error(f"unknown retailers: {', '.join(sorted(unknown))} (coles, woolworths)")

    with (
        tempfile.TemporaryDirectory() as tmp_name,
        ReplicaProcess(products=args.products, seed=7) as site,
    ):
        tmp = Path(tmp_name)
        site.configure(delay_ms=args.latency_ms)
        site.woolworths_configure(delay_ms=args.latency_ms)
        if "coles" in retailers:
            bench_coles(site, tmp, args)
        if "woolworths" in retailers:
            bench_woolworths(site, tmp, args)


if __name__ == "__main__":
    main()
