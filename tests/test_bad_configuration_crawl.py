"""Every documented setting, environment variable, spider argument and site-check option of
the crawls, given a wrong value: the command stops with a documented non-zero status and
one clear line, no traceback, and nothing written or lost.

Each case runs the real command (``scrapy crawl coles_barcodes``, ``scrapy crawl
coles_products``, ``scrapy site-check``, ``scrapy crawl site_check``) in a subprocess from
the project folder, against the bundled replica of the site. The one line is the last
ERROR record the command logs (on stderr, and in the job's log under scrapyd): for a value
refused before the crawl starts (status 2), ``Bad configuration: <what is wrong and what to
do>``, and then it is the only ERROR line; for a crawl that started and could not go on
(statuses 4, 7, 8), ``The crawl ended with status N (<finish reason>): <what to do>``, after
the crawl's own ERROR lines if it had any (the listing crawl names each store it could not
publish).

Nothing written or lost: every file under the case's work folder (the enrichment inbox with
its file, the product inbox with an earlier store file, any folder an option names) is
byte-identical afterwards, with nothing added (no retry, spill, stats or store file), and the
database's row counts are unchanged (the run ledger's ``crawl_runs`` excepted for a crawl
that did start: it records every run by design).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import func, select

from colesbarcodes.db.engine import make_engine, migrate
from colesbarcodes.db.models import Base
from colesbarcodes.replica.catalogue import Catalogue
from colesbarcodes.replica.process import ReplicaProcess
from tests.helpers import FAST_CRAWL, PROJECT, canonical_rows, run_loader, write_jsonl

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from pathlib import Path

PRODUCTS = 60
CATALOGUE = Catalogue.generate(PRODUCTS, seed=1)
SKUS = [p.sku for p in list(CATALOGUE)[:8]]
CLOSED = "127.0.0.1:1"  # a port nothing listens on
FAST = ["-s", "DOWNLOAD_DELAY=0", "-s", "AUTOTHROTTLE_ENABLED=False", "-s", "RETRY_TIMES=1"]
COMMANDS: dict[str, list[str]] = {
    "coles_barcodes": ["crawl", "coles_barcodes", *FAST_CRAWL, "-s", "RETRY_TIMES=1"],
    "coles_products": ["crawl", "coles_products", *FAST],
    "site-check": ["site-check", "--base-url", "{site}", *FAST],
    "site_check": ["crawl", "site_check", "-a", "base_url={site}", *FAST],
}


@dataclass(frozen=True)
class Case:
    """One wrong value: the command, its extra arguments and environment (``{work}`` is the
    case's work folder, ``{site}`` the replica), the exit status and a phrase of the line."""

    id: str
    command: str
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    status: int = 2
    phrase: str = ""
    xfail: str = ""

    def param(self) -> object:
        marks = [pytest.mark.xfail(strict=True, reason=self.xfail)] if self.xfail else []
        return pytest.param(self, id=self.id, marks=marks)


def s(name: str, value: str) -> tuple[str, str]:
    return ("-s", f"{name}={value}")


def a(name: str, value: str) -> tuple[str, str]:
    return ("-a", f"{name}={value}")


B, P, SC, SP = "coles_barcodes", "coles_products", "site-check", "site_check"
NUMBER = "must be a whole number of"

CASES = [
    # --- scrapy crawl coles_barcodes: arguments ---------------------------------------------
    Case("unknown-argument", B, a("stor", "0584"), phrase="unknown argument -a stor"),
    Case("inbox-argument-missing", B, a("inbox", "{work}/nowhere"), phrase="does not exist"),
    Case("inbox-argument-empty", B, a("inbox", ""), phrase="-a inbox= is empty"),
    Case("inbox-argument-a-file", B, a("inbox", "{work}/inbox/skus.jsonl"), phrase="is a file"),
    Case(
        "inbox-env-missing",
        B,
        env={"COLES_ENRICHMENT_INBOX": "{work}/nowhere"},
        phrase="COLES_ENRICHMENT_INBOX) {work}/nowhere does not exist",
    ),
    Case(
        "base-url-env-not-a-url",
        B,
        env={"COLES_BASE_URL": "notaurl"},
        phrase="COLES_BASE_URL must be an http:// or https:// URL",
    ),
    Case(
        "base-url-argument-ftp",
        B,
        a("base_url", "ftp://{site}"),
        phrase="-a base_url must be an http:// or https:// URL",
    ),
    Case(
        "base-url-unreachable",
        B,
        env={"COLES_BASE_URL": f"http://{CLOSED}"},
        status=4,
        phrase="(site_unreachable: home page",
    ),
    Case("store-argument-letters", B, a("store", "abc"), phrase="'abc' is not a Coles store id"),
    Case(
        "store-env-malformed",
        B,
        env={"COLES_STORE_ID": "05-84"},
        phrase="COLES_STORE_ID: '05-84' is not a Coles store id",
    ),
    Case("limit-negative", B, a("limit", "-1"), phrase="-a limit must be a whole number of SKUs"),
    Case("limit-not-a-number", B, a("limit", "ten"), phrase="not 'ten'"),
    # --- coles_barcodes: settings -----------------------------------------------------------
    Case("max-skus-negative", B, s("COLES_MAX_SKUS", "-1"), phrase=f"COLES_MAX_SKUS {NUMBER} 0"),
    Case(
        "recheck-days-negative",
        B,
        s("COLES_RECHECK_DAYS", "-1"),
        phrase="COLES_RECHECK_DAYS must be a number of 0 or more (days)",
    ),
    Case(
        "upsert-batch-zero",
        B,
        s("COLES_UPSERT_BATCH_SIZE", "0"),
        phrase=f"COLES_UPSERT_BATCH_SIZE {NUMBER} 1 or more",
    ),
    Case("upsert-batch-not-a-number", B, s("COLES_UPSERT_BATCH_SIZE", "lots"), phrase="not 'lots'"),
    Case(
        "upsert-delay-negative",
        B,
        s("COLES_UPSERT_MAX_DELAY", "-1"),
        phrase="COLES_UPSERT_MAX_DELAY must be a number of 0 or more",
    ),
    Case(
        "db-write-thread-not-a-boolean",
        B,
        s("COLES_DB_WRITE_THREAD", "maybe"),
        phrase="COLES_DB_WRITE_THREAD must be true or false",
    ),
    Case(
        "page-fallback-not-a-boolean",
        B,
        s("COLES_PRODUCT_PAGE_FALLBACK", "yes"),
        phrase="COLES_PRODUCT_PAGE_FALLBACK must be true or false",
    ),
    Case(
        "browser-pages-negative",
        B,
        s("COLES_BOTCHECK_MAX_BROWSER_PAGES", "-1"),
        phrase=f"COLES_BOTCHECK_MAX_BROWSER_PAGES {NUMBER} 0",
    ),
    Case(
        "graphql-batch-zero",
        B,
        s("COLES_GRAPHQL_BATCH", "0"),
        phrase=f"COLES_GRAPHQL_BATCH {NUMBER} 1 or more",
    ),
    Case(
        "block-retries-negative",
        B,
        s("COLES_BLOCK_MAX_RETRIES", "-1"),
        phrase=f"COLES_BLOCK_MAX_RETRIES {NUMBER} 0",
    ),
    Case(
        "block-backoff-negative",
        B,
        s("COLES_BLOCK_BACKOFF", "-5"),
        phrase="COLES_BLOCK_BACKOFF must be a number of 0 or more (seconds), not '-5'",
    ),
    Case("proxies-nonsense", B, env={"COLES_PROXIES": "nonsense"}, phrase="COLES_PROXIES entry 1"),
    Case(
        "proxies-ftp",
        B,
        env={"COLES_PROXIES": "ftp://proxy.example:21"},
        phrase="is not http://[user:password@]host:port",
    ),
    Case(
        "proxies-missing-file",
        B,
        env={"COLES_PROXIES": "@{work}/proxies.txt"},
        phrase="COLES_PROXIES: cannot read {work}/proxies.txt",
    ),
    Case(
        "proxy-unreachable",
        B,
        env={"COLES_PROXIES": f"http://{CLOSED}"},
        status=4,
        phrase="(site_unreachable: home page",
    ),
    Case(
        "chromium-missing",
        B,
        env={"COLES_CHROMIUM_PATH": "{work}/chromium"},
        phrase="COLES_CHROMIUM_PATH {work}/chromium: no executable there",
    ),
    Case(
        "chromium-not-executable",
        B,
        env={"COLES_CHROMIUM_PATH": "{work}/inbox/skus.jsonl"},
        phrase="no executable there",
    ),
    Case(
        "stats-file-folder-missing",
        B,
        env={"COLES_STATS_FILE": "{work}/nowhere/stats.json"},
        phrase="the folder {work}/nowhere does not exist",
    ),
    Case(
        "stats-file-is-a-folder",
        B,
        env={"COLES_STATS_FILE": "{work}/inbox"},
        phrase="COLES_STATS_FILE {work}/inbox: is a folder",
    ),
    Case(
        "robots-not-a-boolean",
        B,
        s("ROBOTSTXT_OBEY", "maybe"),
        phrase="ROBOTSTXT_OBEY must be true or false",
    ),
    Case(
        "autothrottle-not-a-boolean",
        B,
        s("AUTOTHROTTLE_ENABLED", "often"),
        phrase="AUTOTHROTTLE_ENABLED must be true or false",
    ),
    Case(
        "concurrent-requests-zero",
        B,
        s("CONCURRENT_REQUESTS", "0"),
        phrase=f"CONCURRENT_REQUESTS {NUMBER} 1 or more",
    ),
    Case(
        "download-delay-negative",
        B,
        s("DOWNLOAD_DELAY", "-0.5"),
        phrase="DOWNLOAD_DELAY must be a number of 0 or more",
    ),
    Case("retry-times-negative", B, s("RETRY_TIMES", "-1"), phrase=f"RETRY_TIMES {NUMBER} 0"),
    Case(
        "retry-backoff-not-a-number",
        B,
        s("RETRY_BACKOFF_BASE", "soon"),
        phrase="RETRY_BACKOFF_BASE must be a number",
    ),
    Case(
        "retry-after-max-negative",
        B,
        s("RETRY_AFTER_MAX", "-1"),
        phrase="RETRY_AFTER_MAX must be a number of 0 or more",
    ),
    Case(
        "monitor-gtin-share-not-a-boolean",
        B,
        s("COLES_MONITOR_GTIN_SHARE", "perhaps"),
        phrase="COLES_MONITOR_GTIN_SHARE must be true or false",
    ),
    Case(
        "monitor-gtin-drop-above-one",
        B,
        s("COLES_MONITOR_GTIN_DROP", "2"),
        phrase="COLES_MONITOR_GTIN_DROP must be a number from 0 to 1",
    ),
    Case(
        "monitor-gtin-history-zero",
        B,
        s("COLES_MONITOR_GTIN_HISTORY", "0"),
        phrase=f"COLES_MONITOR_GTIN_HISTORY {NUMBER} 1 or more",
    ),
    Case(
        "monitor-min-records-negative",
        B,
        s("COLES_MONITOR_GTIN_MIN_RECORDS", "-1"),
        phrase=f"COLES_MONITOR_GTIN_MIN_RECORDS {NUMBER} 1 or more",
    ),
    Case(
        "monitor-min-share-above-one",
        B,
        s("COLES_MONITOR_MIN_GTIN_SHARE", "1.5"),
        phrase="COLES_MONITOR_MIN_GTIN_SHARE must be a number from 0 to 1",
    ),
    Case(
        "monitor-format-share-negative",
        B,
        s("COLES_MONITOR_MAX_FORMAT_ERROR_SHARE", "-0.1"),
        phrase="COLES_MONITOR_MAX_FORMAT_ERROR_SHARE must be a number from 0 to 1",
    ),
    # --- coles_barcodes: the frontier and the database -----------------------------------
    Case(
        "frontier-env-not-redis",
        B,
        env={"COLES_FRONTIER_URL": "notredis"},
        phrase="COLES_FRONTIER_URL must be a Redis URL",
    ),
    Case(
        "frontier-argument-http",
        B,
        a("frontier", "http://:s3cret@127.0.0.1:6379/0"),
        phrase="-a frontier must be a Redis URL",
    ),
    Case(
        "frontier-unreachable",
        B,
        env={"COLES_FRONTIER_URL": f"redis://{CLOSED}/0"},
        status=8,
        phrase="(frontier_unavailable: redis://127.0.0.1:1/0",
    ),
    Case(
        "frontier-claim-timeout-zero",
        B,
        s("COLES_FRONTIER_CLAIM_TIMEOUT", "0"),
        phrase="COLES_FRONTIER_CLAIM_TIMEOUT must be a number above 0",
    ),
    Case(
        "frontier-batch-zero",
        B,
        s("COLES_FRONTIER_BATCH", "0"),
        phrase=f"COLES_FRONTIER_BATCH {NUMBER} 1 or more",
    ),
    Case(
        "frontier-prefetch-negative",
        B,
        s("COLES_FRONTIER_PREFETCH", "-1"),
        phrase=f"COLES_FRONTIER_PREFETCH {NUMBER} 0",
    ),
    Case(
        "frontier-poll-zero",
        B,
        s("COLES_FRONTIER_POLL", "0"),
        phrase="COLES_FRONTIER_POLL must be a number above 0",
    ),
    Case(
        "frontier-deliveries-zero",
        B,
        s("COLES_FRONTIER_MAX_DELIVERIES", "0"),
        phrase=f"COLES_FRONTIER_MAX_DELIVERIES {NUMBER} 1 or more",
    ),
    Case(
        "database-unreachable",
        B,
        env={"DATABASE_URL": f"postgresql://postgres@{CLOSED}/x"},
        status=7,
        phrase="(database_unavailable: postgresql://postgres@127.0.0.1:1/x",
    ),
    Case(
        "database-scheme-unsupported",
        B,
        env={"DATABASE_URL": "mysql://x@y/z"},
        phrase="postgresql",
    ),
    # --- scrapy crawl coles_products --------------------------------------------------------
    Case("listing-unknown-argument", P, a("store", "0584"), phrase="did you mean stores?"),
    Case(
        "listing-stores-letters",
        P,
        a("stores", "abc"),
        phrase="-a stores: 'abc' is not a Coles store id",
    ),
    Case("listing-stores-empty", P, a("stores", ""), phrase="-a stores= is empty"),
    Case("listing-stores-only-commas", P, a("stores", ",,"), phrase="-a stores names no store"),
    Case(
        "listing-store-env-malformed",
        P,
        env={"COLES_STORE_ID": "0584;0601"},
        phrase="COLES_STORE_ID: '0584;0601' is not a Coles store id",
    ),
    Case(
        "listing-inbox-a-file",
        P,
        a("inbox", "{work}/product_inbox/earlier.jsonl"),
        phrase="the product inbox (-a inbox) {work}/product_inbox/earlier.jsonl is a file",
    ),
    Case(
        "listing-inbox-env-a-file",
        P,
        env={"COLES_PRODUCT_INBOX": "{work}/product_inbox/earlier.jsonl"},
        phrase="(COLES_PRODUCT_INBOX) {work}/product_inbox/earlier.jsonl is a file",
    ),
    Case(
        "listing-base-url-ftp",
        P,
        env={"COLES_BASE_URL": "ftp://{site}"},
        phrase="COLES_BASE_URL must be an http:// or https:// URL",
    ),
    Case(
        "listing-base-url-unreachable",
        P,
        a("base_url", f"http://{CLOSED}"),
        status=4,
        phrase="(site_unusable",
    ),
    Case(
        "listing-page-size-zero",
        P,
        s("COLES_LISTING_PAGE_SIZE", "0"),
        phrase=f"COLES_LISTING_PAGE_SIZE {NUMBER} 1 or more",
    ),
    Case(
        "listing-max-pages-negative",
        P,
        s("COLES_LISTING_MAX_PAGES", "-1"),
        phrase=f"COLES_LISTING_MAX_PAGES {NUMBER} 1 or more",
    ),
    Case(
        "listing-max-failed-negative",
        P,
        s("COLES_LISTING_MAX_FAILED_PAGES", "-1"),
        phrase=f"COLES_LISTING_MAX_FAILED_PAGES {NUMBER} 0",
    ),
    Case(
        "listing-queue-not-a-boolean",
        P,
        s("COLES_LISTING_QUEUE_MISSING_BARCODES", "sometimes"),
        phrase="COLES_LISTING_QUEUE_MISSING_BARCODES must be true or false",
    ),
    Case(
        "listing-queue-inbox-a-file",
        P,
        s("COLES_LISTING_QUEUE_MISSING_BARCODES", "True"),
        env={"COLES_ENRICHMENT_INBOX": "{work}/inbox/skus.jsonl"},
        phrase="COLES_ENRICHMENT_INBOX {work}/inbox/skus.jsonl is a file",
    ),
    Case(
        "listing-proxies-nonsense",
        P,
        s("COLES_PROXIES", "nonsense"),
        phrase="COLES_PROXIES entry 1",
    ),
    Case(
        "listing-stats-file-folder-missing",
        P,
        env={"COLES_STATS_FILE": "{work}/nowhere/stats.json"},
        phrase="does not exist",
    ),
    # --- scrapy site-check ------------------------------------------------------------------
    Case("check-sku-letters", SC, ("--sku", "milk"), phrase="a Coles SKU is a number"),
    Case("check-sku-negative", SC, ("--sku", "-5"), phrase="'-5' is not a SKU"),
    Case(
        "check-save-a-file",
        SC,
        ("--save", "{work}/inbox/skus.jsonl"),
        phrase="--save/-a save {work}/inbox/skus.jsonl is a file, not a folder",
    ),
    Case(
        "check-save-cannot-create",
        SC,
        ("--save", "/proc/no-such-folder"),
        phrase="cannot create it",
    ),
    Case(
        "check-base-url-no-scheme",
        SC,
        ("--base-url", "www.coles.com.au"),
        phrase="--base-url/-a base_url must be an http:// or https:// URL",
    ),
    Case(
        "check-base-url-unreachable",
        SC,
        ("--base-url", f"http://{CLOSED}"),
        status=4,
        phrase="(site_unreachable",
    ),
    Case(
        "check-store-letters",
        SC,
        ("--store", "abc"),
        phrase="--store/-a store: 'abc' is not a Coles store id",
    ),
    Case(
        "check-proxies-missing-file",
        SC,
        s("COLES_PROXIES", "@{work}/proxies.txt"),
        phrase="cannot read",
    ),
    Case(
        "check-chromium-missing",
        SC,
        env={"COLES_CHROMIUM_PATH": "{work}/chromium"},
        phrase="no executable there",
    ),
    Case(
        "check-retry-times-negative", SC, s("RETRY_TIMES", "-1"), phrase=f"RETRY_TIMES {NUMBER} 0"
    ),
    # --- scrapy crawl site_check (as scrapyd runs it) ----------------------------------------
    Case("check-spider-unknown-argument", SP, a("sku", "1018067"), phrase="did you mean skus?"),
    Case("check-spider-skus-letters", SP, a("skus", "1018067,milk"), phrase="'milk' is not a SKU"),
    Case(
        "check-spider-save-a-file",
        SP,
        a("save", "{work}/inbox/skus.jsonl"),
        phrase="is a file, not a folder",
    ),
    Case(
        "check-spider-base-url-ftp",
        SP,
        a("base_url", "ftp://{site}"),
        phrase="must be an http:// or https:// URL",
    ),
    Case("check-spider-store-empty", SP, a("store", ""), phrase="-a store= is empty"),
    Case(
        "check-spider-base-url-unreachable",
        SP,
        a("base_url", f"http://{CLOSED}"),
        status=4,
        phrase="(site_unreachable",
    ),
]
# The cases where the barcode crawl's database is involved: also run on PostgreSQL.
DATABASE_CASES = {
    "upsert-batch-zero",
    "recheck-days-negative",
    "base-url-unreachable",
    "frontier-unreachable",
    "database-unreachable",
    "database-scheme-unsupported",
}


@pytest.fixture(scope="module")
def site() -> Iterator[ReplicaProcess]:
    with ReplicaProcess(products=PRODUCTS, seed=1) as replica:
        yield replica


@dataclass
class Run:
    returncode: int
    output: str


def work_folder(root: Path) -> Path:
    """The enrichment inbox with one file of SKUs, the product inbox with an earlier store
    file: what a wrong value must leave as it was."""
    work = root / "work"
    (work / "inbox").mkdir(parents=True)
    write_jsonl(work / "inbox" / "skus.jsonl", [{"sku": sku} for sku in SKUS])
    (work / "product_inbox").mkdir()
    write_jsonl(work / "product_inbox" / "earlier.jsonl", canonical_rows("0584", range(1, 4)))
    return work


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder``, by relative path, with its bytes."""
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def row_counts(database_url: str, leave_out: tuple[str, ...] = ()) -> dict[str, int]:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return {
                table.name: conn.scalar(select(func.count()).select_from(table)) or 0
                for table in Base.metadata.sorted_tables
                if table.name not in leave_out
            }
    finally:
        engine.dispose()


def seeded(database_url: str, root: Path) -> str:
    """The database with the schema and a few imported products (rows to keep)."""
    engine = make_engine(database_url)
    migrate(engine)
    engine.dispose()
    products = root / "seed"
    products.mkdir()
    write_jsonl(products / "store_0584.jsonl", canonical_rows("0584", range(100, 110)))
    result = run_loader(
        database_url, "update", "--products", "--once", "--no-progress", "--inbox", str(products)
    )
    assert result.exit_code == 0, result.output
    return database_url


def run_case(case: Case, site: str, work: Path, database_url: str) -> Run:
    """The case's command, a real subprocess from the project folder, with a clean
    environment (no COLES_* or DATABASE_URL of the test run's own)."""

    def fill(text: str) -> str:
        return text.replace("{work}", str(work)).replace("{site}", site)

    env = {
        k: v for k, v in os.environ.items() if not k.startswith("COLES_") and k != "DATABASE_URL"
    }
    env.update(
        PYTHONPATH=os.pathsep.join(p for p in (str(PROJECT), env.get("PYTHONPATH", "")) if p),
        DATABASE_URL=database_url,
        COLES_BASE_URL=site,
        COLES_ENRICHMENT_INBOX=str(work / "inbox"),
        COLES_PRODUCT_INBOX=str(work / "product_inbox"),
        TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS="",
    )
    env.update({name: fill(value) for name, value in case.env.items()})
    command = [sys.executable, "-m", "scrapy", *COMMANDS[case.command], *case.args]
    proc = subprocess.run(
        [fill(part) for part in command],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    return Run(proc.returncode, proc.stdout + proc.stderr)


def assert_one_clear_line(case: Case, run: Run, work: Path) -> None:
    """The documented status; the last ERROR line says what the case expects (the only one
    for a value refused at the start); no traceback."""
    assert run.returncode == case.status, run.output[-3000:]
    assert "Traceback" not in run.output, run.output[-3000:]
    errors = [line for line in run.output.splitlines() if " ERROR: " in line]
    assert errors, run.output[-3000:]
    if case.status == 2:
        assert len(errors) == 1, errors
    line = errors[-1].split(" ERROR: ", 1)[1]
    lead = (
        "Bad configuration: " if case.status == 2 else f"The crawl ended with status {case.status} "
    )
    assert line.startswith(lead), line
    assert case.phrase.replace("{work}", str(work)) in line, line


def check(case: Case, site: ReplicaProcess, root: Path, database_url: str) -> None:
    work = work_folder(root)
    before = snapshot(work)
    # a crawl that started records itself in the run ledger: that row is by design
    ledger = () if case.status == 2 else ("crawl_runs",)
    counts = row_counts(database_url, ledger)
    run = run_case(case, site.url, work, database_url)
    assert_one_clear_line(case, run, work)
    assert snapshot(work) == before  # inboxes unmoved and byte-identical, nothing added
    assert row_counts(database_url, ledger) == counts


@pytest.mark.parametrize("case", [case.param() for case in CASES])
def test_a_wrong_value_stops_the_command_with_one_clear_line_and_touches_nothing(
    case: Case, site: ReplicaProcess, tmp_path: Path
) -> None:
    database = seeded(f"sqlite:///{tmp_path / 'crawl.sqlite3'}", tmp_path)
    check(case, site, tmp_path, database)


@pytest.mark.parametrize("case", [case.param() for case in CASES if case.id in DATABASE_CASES])
def test_a_wrong_value_leaves_the_database_of_the_barcode_crawl_as_it_was(
    case: Case, site: ReplicaProcess, tmp_path: Path, database_url: str
) -> None:
    """The same cases on SQLite and PostgreSQL: the rows of the crawl's own database (the
    unreachable database case reads another) stay as they were."""
    check(case, site, tmp_path, seeded(database_url, tmp_path))


def test_every_setting_the_readme_documents_for_the_crawls_has_a_case() -> None:
    """The table covers each COLES_* setting of the README's and docs/listing.md's tables
    (those that take only text without form, a key prefix or a list, are listed apart)."""
    documented = set()
    for doc in ("README.md", "docs/listing.md"):
        for line in (PROJECT / doc).read_text().splitlines():
            if line.startswith("| `COLES_") or line.startswith("| `DATABASE_URL"):
                cell = line.split("|")[1]
                documented |= {part.strip("` ") for part in cell.split(",")}
    documented = {name.split(" ")[0].strip("`") for name in documented}
    free_text = {"COLES_FRONTIER_KEY", "COLES_LISTING_SKIP_GROUPS"}
    covered = " ".join(" ".join([*case.args, *case.env]) for case in CASES)
    missing = sorted(name for name in documented - free_text if name not in covered)
    assert missing == []


@pytest.mark.parametrize(
    ("arguments", "phrase"),
    [
        ([("setting", "COLES_GRAPHQL_BATCH=0")], "COLES_GRAPHQL_BATCH must be a whole number"),
        ([("stor", "0584")], "unknown argument -a stor for the spider coles_barcodes"),
    ],
    ids=["setting", "argument"],
)
def test_under_scrapyd_a_wrong_value_ends_the_job_with_one_clear_log_line(
    site: ReplicaProcess, tmp_path: Path, arguments: list[tuple[str, str]], phrase: str
) -> None:
    """scrapyd runs the project's ``crawl`` command: the job's log ends with the one line,
    with no traceback, and the inbox is left as it was."""
    pytest.importorskip("scrapyd")
    from tests.helpers import scrapyd_process

    work = work_folder(tmp_path)
    before = snapshot(work)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("COLES_")},
        "DATABASE_URL": seeded(f"sqlite:///{tmp_path / 'crawl.sqlite3'}", tmp_path),
        "COLES_BASE_URL": site.url,
        "COLES_ENRICHMENT_INBOX": str(work / "inbox"),
    }
    with scrapyd_process(tmp_path / "scrapyd", PROJECT, env) as daemon:
        job = daemon.call(
            "/schedule.json",
            [("project", "colesbarcodes"), ("spider", "coles_barcodes"), *arguments],
        )["jobid"]
        daemon.wait_finished(job)
    logs = list((tmp_path / "scrapyd" / "logs").rglob(f"{job}.log"))
    assert len(logs) == 1
    log = logs[0].read_text()
    assert "Traceback" not in log
    errors = [line.split(" ERROR: ", 1)[1] for line in log.splitlines() if " ERROR: " in line]
    assert len(errors) == 1 and errors[0].startswith("Bad configuration: "), errors
    assert phrase in errors[0]
    assert snapshot(work) == before
