"""Test helpers: writing inbox files, running the loader, a canonical database dump."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from click.testing import CliRunner
from sqlalchemy import select
from stdnum import ean

from colesbarcodes.db.models import (
    BarcodeConflict,
    CompanySku,
    ImportedFile,
    PriceHistory,
    Product,
    ProductGroup,
    ProductGroupMember,
    ProductMerge,
    QuarantinedLine,
    Store,
    StorePrice,
)
from loaders.cli import cli
from loaders.update import LogProgress

PROJECT = Path(__file__).resolve().parents[1]

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from click.testing import Result
    from sqlalchemy.engine import Engine

    from loaders.importer import FileReport


def write_jsonl(path: Path, rows: list[Any], mtime: float | None = None) -> Path:
    """Write rows (dicts as JSON, str/bytes as they are) one per line."""
    with path.open("wb") as out:
        for row in rows:
            if isinstance(row, bytes):
                out.write(row.rstrip(b"\n") + b"\n")
            elif isinstance(row, str):
                out.write(row.rstrip("\n").encode() + b"\n")
            else:
                out.write(json.dumps(row).encode() + b"\n")
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def canonical_rows(
    store: str, skus: range, *, barcode_every: int = 2, price: float = 1.0
) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for sku in skus:
        row: dict[str, object] = {
            "store_id": store,
            "sku": sku,
            "name": f"Product {sku}",
            "brand": "Brand",
            "size": "1kg",
            "price": price + sku % 7,
            "scraped_at": "2026-11-23T06:00:00Z",
        }
        if sku % barcode_every == 0:
            body = f"93{sku:010d}"
            row["barcode"] = body + ean.calc_check_digit(body)
        rows.append(row)
    return rows


def run_loader(database_url: str, *args: str, env: Mapping[str, str] | None = None) -> Result:
    return CliRunner().invoke(
        cli, ["--database-url", database_url, *args], catch_exceptions=False, env=env
    )


def import_published(published: Path, database_url: str, scratch: Path) -> Result:
    """Import a listing crawl's published product files (copies of them, in a fresh inbox
    under ``scratch``) with ``coles-loader update``, as a user's next step would."""
    inbox = scratch / "product_inbox"
    inbox.mkdir()
    for path in published.glob("*.jsonl"):
        shutil.copy2(path, inbox / path.name)
    return run_loader(
        database_url, "update", "--products", "--once", "--no-progress", "--inbox", str(inbox)
    )


def _iso(value: Any) -> Any:
    if value is None or not hasattr(value, "isoformat"):
        return value
    return value.replace(tzinfo=None).isoformat(timespec="seconds")


def dump(engine: Engine) -> dict[str, Any]:
    """The database by natural keys (no surrogate ids, no wall-clock times), for comparing
    two runs that must end in the same state."""
    with engine.connect() as conn:
        skus: dict[int, list[tuple[str, str]]] = {}
        for company, sku, product_id in conn.execute(
            select(CompanySku.company, CompanySku.sku, CompanySku.product_id)
        ):
            skus.setdefault(product_id, []).append((company, sku))
        products = sorted(
            (tuple(sorted(skus.get(pid, []))), name, brand, size, barcode, scope)
            for pid, name, brand, size, barcode, scope in conn.execute(
                select(
                    Product.id,
                    Product.name,
                    Product.brand,
                    Product.size,
                    Product.barcode,
                    Product.barcode_scope,
                )
            )
        )
        sku_key = {
            pk: (c, s)
            for pk, c, s in conn.execute(select(CompanySku.id, CompanySku.company, CompanySku.sku))
        }
        store_key = {
            pk: (c, s) for pk, c, s in conn.execute(select(Store.id, Store.company, Store.store_id))
        }
        prices = sorted(
            (store_key[st], sku_key[sk], p, w, u, a, url, _iso(seen))
            for st, sk, p, w, u, a, url, seen in conn.execute(
                select(
                    StorePrice.store_pk,
                    StorePrice.sku_pk,
                    StorePrice.price,
                    StorePrice.was_price,
                    StorePrice.unit_price,
                    StorePrice.available,
                    StorePrice.url,
                    StorePrice.last_seen,
                )
            )
        )
        history = sorted(
            (store_key[st], sku_key[sk], p, w, u, _iso(at))
            for st, sk, p, w, u, at in conn.execute(
                select(
                    PriceHistory.store_pk,
                    PriceHistory.sku_pk,
                    PriceHistory.price,
                    PriceHistory.was_price,
                    PriceHistory.unit_price,
                    PriceHistory.observed_at,
                )
            )
        )
        conflicts = sorted(
            tuple(row)
            for row in conn.execute(
                select(
                    BarcodeConflict.company,
                    BarcodeConflict.sku,
                    BarcodeConflict.existing_barcode,
                    BarcodeConflict.offered_barcode,
                    BarcodeConflict.reason,
                    BarcodeConflict.source,
                )
            )
        )
        merges = sorted(
            tuple(row) for row in conn.execute(select(ProductMerge.reason, ProductMerge.source))
        )
        quarantined = sorted(
            tuple(row)
            for row in conn.execute(
                select(
                    ImportedFile.original_name, QuarantinedLine.line_no, QuarantinedLine.reason
                ).join(ImportedFile, ImportedFile.id == QuarantinedLine.file_id)
            )
        )
        files = sorted(
            tuple(row)
            for row in conn.execute(
                select(
                    ImportedFile.original_name,
                    ImportedFile.status,
                    ImportedFile.lines_done,
                    ImportedFile.lines_imported,
                    ImportedFile.lines_quarantined,
                )
            )
        )
        groups = sorted(
            (key, tuple(sorted(s for pid in members for s in skus.get(pid, []))))
            for key, members in _groups(conn).items()
        )
        stores = sorted(
            tuple(row)
            for row in conn.execute(select(Store.company, Store.store_id, Store.name, Store.state))
        )
    return {
        "products": products,
        "stores": stores,
        "prices": prices,
        "history": history,
        "conflicts": conflicts,
        "merges": merges,
        "quarantined": quarantined,
        "files": files,
        "groups": groups,
    }


def _groups(conn: Any) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for key, product_id in conn.execute(
        select(ProductGroup.key, ProductGroupMember.product_id).join(
            ProductGroupMember, ProductGroupMember.group_id == ProductGroup.id
        )
    ):
        groups.setdefault(key, []).append(product_id)
    return groups


FAST_CRAWL = [
    "-s",
    "DOWNLOAD_DELAY=0",
    "-s",
    "AUTOTHROTTLE_ENABLED=False",
    "-s",
    "CONCURRENT_REQUESTS=16",
    "-s",
    "CONCURRENT_REQUESTS_PER_DOMAIN=16",
    "-s",
    "RETRY_BACKOFF_BASE=0.05",
    "-s",
    "COLES_UPSERT_MAX_DELAY=0.5",
]


@dataclass
class CrawlResult:
    returncode: int
    stats: dict[str, Any]
    log: str


def crawl_command(inbox: Path, base_url: str, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "scrapy",
        "crawl",
        "coles_barcodes",
        "-a",
        f"inbox={inbox}",
        "-s",
        f"COLES_BASE_URL={base_url}",
        *FAST_CRAWL,
        *args,
    ]


def crawl_env(database_url: str, stats_file: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "COLES_STATS_FILE": str(stats_file),
        **extra,
    }


def run_crawl(
    database_url: str, inbox: Path, base_url: str, *args: str, timeout: float = 240
) -> CrawlResult:
    """A real ``scrapy crawl coles_barcodes`` in a subprocess, from the project folder."""
    stats_file = inbox.parent / f"stats-{uuid.uuid4().hex[:6]}.json"
    proc = subprocess.run(
        crawl_command(inbox, base_url, *args),
        cwd=PROJECT,
        env=crawl_env(database_url, stats_file),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    stats = json.loads(stats_file.read_text()) if stats_file.exists() else {}
    return CrawlResult(proc.returncode, stats, proc.stdout + proc.stderr)


def retry_file_skus(inbox: Path) -> list[int]:
    """The SKUs of the retry files a crawl left in its inbox, sorted."""
    skus = []
    for path in inbox.glob("*.jsonl"):
        skus += [json.loads(line)["sku"] for line in path.read_text().splitlines()]
    return sorted(skus)


def lookups(engine: Engine) -> list[tuple[str, str, str | None]]:
    """(sku, outcome, barcode) of every stored lookup, in insertion order."""
    from colesbarcodes.db.models import Lookup

    with engine.connect() as conn:
        rows = conn.execute(select(Lookup.sku, Lookup.outcome, Lookup.barcode).order_by(Lookup.id))
        return [(sku, outcome, barcode) for sku, outcome, barcode in rows]


# --- scrapyd ------------------------------------------------------------------------------

SCRAPYD_USER, SCRAPYD_PASSWORD = "crawler", "test-secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ScrapydApi:
    """scrapyd's JSON API, with the test credentials."""

    def __init__(self, url: str) -> None:
        self.url = url
        token = base64.b64encode(f"{SCRAPYD_USER}:{SCRAPYD_PASSWORD}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}"}

    def call(self, path: str, data: dict[str, str] | list[tuple[str, str]] | None = None) -> Any:
        body = None if data is None else urllib.parse.urlencode(data).encode()
        request = urllib.request.Request(self.url + path, data=body, headers=self.headers)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def wait_finished(self, job: str, project: str = "colesbarcodes", timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        jobs: Any = None
        while time.monotonic() < deadline:
            jobs = self.call(f"/listjobs.json?project={project}")
            if any(j["id"] == job for j in jobs["finished"]):
                return
            time.sleep(0.5)
        raise AssertionError(f"scrapyd job {job} did not finish: {jobs}")


@contextlib.contextmanager
def scrapyd_process(folder: Path, cwd: Path, env: Mapping[str, str]) -> Iterator[ScrapydApi]:
    """A real scrapyd on 127.0.0.1 and an ephemeral port, authentication on, its
    configuration, logs, eggs and databases under ``folder``, started in ``cwd`` (the
    project folder: eggless mode; anywhere else: only deployed eggs)."""
    home = folder / "home"
    home.mkdir(parents=True)
    port = free_port()
    (home / ".scrapyd.conf").write_text(
        "[scrapyd]\n"
        f"bind_address = 127.0.0.1\nhttp_port = {port}\n"
        f"username = {SCRAPYD_USER}\npassword = {SCRAPYD_PASSWORD}\n"
        f"logs_dir = {folder / 'logs'}\ndbs_dir = {folder / 'dbs'}\n"
        f"eggs_dir = {folder / 'eggs'}\n"
        "poll_interval = 0.5\n"
    )
    # twistd's pid file defaults to the working folder: two nodes started in the project
    # folder at once (parallel test workers) would refuse each other.
    process = subprocess.Popen(
        [sys.executable, "-m", "scrapyd", "--pidfile", str(folder / "twistd.pid")],
        cwd=cwd,
        env={**env, "HOME": str(home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    api = ScrapydApi(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                api.call("/daemonstatus.json")
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.2)
        yield api
    finally:
        process.terminate()
        process.wait(timeout=30)


class BatchLines(LogProgress):
    """Progress that keeps the lines of each batch, in the order they were committed, and
    how many batches were committed when each file was done."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []
        self.done_after: dict[str, int] = {}

    def advance(self, lines: int) -> None:
        super().advance(lines)
        self.batches.append(lines)

    def file_done(self, report: FileReport) -> None:
        super().file_done(report)
        self.done_after[report.name] = len(self.batches)
