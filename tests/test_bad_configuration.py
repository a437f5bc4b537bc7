"""Bad configuration: every ``coles-loader`` command, both spiders and ``scrapy site-check``
given wrong option, argument, environment and setting values, each run as a real process.

A typo in a path, a MySQL URL from the old system, a number out of range or an unreachable
server must end in one line that says what is wrong and what to do, with a documented exit
status, never a traceback, and with nothing written or lost: the inbox files keep their
bytes and place, nothing appears beside them, and the database's rows stay as they were.
Cases that reach a database run on SQLite and on PostgreSQL. Two tables, one per program
(their harnesses differ: a Click command line, and Scrapy crawls against the bundled
replica); both are in docs/reliability.md, "Bad configuration".

coles-loader (:data:`LOADER_CASES`): exit 1 is a runtime error, 2 a usage error; the one line
is stderr's (Click's "Usage:" and "Try ... --help" lines aside).

The crawls (:data:`CRAWL_CASES`): ``scrapy crawl coles_barcodes``, ``scrapy crawl
coles_products``, ``scrapy site-check`` and ``scrapy crawl site_check`` from the project
folder. The one line is the last ERROR record the command logs (on stderr, and in the job's
log under scrapyd): for a value refused before the crawl starts (status 2), ``Bad
configuration: <what is wrong and what to do>``, and then it is the only ERROR line; for a
crawl that started and could not go on (statuses 4, 7, 8), ``The crawl ended with status N
(<finish reason>): <what to do>``, after the crawl's own ERROR lines if it had any (the
listing crawl names each store it could not publish). The run ledger's ``crawl_runs`` row of
a crawl that did start is the one row allowed to appear: it records every run by design.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import func, inspect, select

from colesbarcodes.db.engine import make_engine, migrate
from colesbarcodes.db.models import Base, Lookup
from colesbarcodes.replica.catalogue import Catalogue
from colesbarcodes.replica.process import ReplicaProcess
from tests.conftest import require
from tests.helpers import FAST_CRAWL, PROJECT, canonical_rows, free_port, run_loader, write_jsonl

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence


# =======================================================================================
# coles-loader
# =======================================================================================

# Placeholders in a case's arguments and environment, replaced in its workspace.
MISSING = "<MISSING>"  # a path that does not exist
FILE = "<FILE>"  # a product file (where a folder is expected)
FOLDER = "<FOLDER>"  # an empty folder (where a file is expected)
CLOSED_PLACEHOLDER = "<CLOSED>"  # a local port nothing listens on
SECRET = "s3cret"  # noqa: S105 - a test value that must never be printed


@dataclass(frozen=True)
class LoaderCase:
    """One bad value: the command line after ``coles-loader``, the environment it adds,
    the exit status and a phrase of the one-line error."""

    id: str
    args: tuple[str, ...]
    status: int
    phrase: str
    env: Mapping[str, str] = field(default_factory=dict)
    database: bool = False  # reaches the database: run on SQLite and PostgreSQL
    unreadable: str | None = None  # chmod 000 this placeholder's path first
    postgres: bool = False  # the message needs the PostgreSQL server up


def loader_case(
    id: str,
    command: str | tuple[str, ...],
    status: int,
    phrase: str,
    *,
    env: Mapping[str, str] | None = None,
    database: bool = False,
    unreadable: str | None = None,
    postgres: bool = False,
) -> LoaderCase:
    args = tuple(command.split()) if isinstance(command, str) else command
    return LoaderCase(id, args, status, phrase, dict(env or {}), database, unreadable, postgres)


MYSQL = "mysql://x@y/z"
# Every command that opens the database, with the arguments it needs to get that far.
DATABASE_COMMANDS = {
    "update": "update --products --once --no-progress",
    "migrate": "migrate",
    "data-quality": "data-quality",
    "report": "report",
    "inspect-product": "inspect-product 1",
    "find-sku": "find-sku 1",
    "runs": "runs --imports",
    "analyze-store": "analyze-store 0584",
    "compare-store-skus": f"compare-store-skus 0584 {FILE}",
    "compare": "compare",
    "queue-missing-barcodes": "queue-missing-barcodes",
}
UNSUPPORTED = "the mysql scheme is not supported (MySQL and MariaDB are not); use sqlite:///PATH or postgresql://USER@HOST/DB"

LOADER_CASES: list[LoaderCase] = [
    # --- DATABASE_URL / --database-url, on every command that opens the database --------
    *[
        loader_case(
            f"{name}-DATABASE_URL-mysql", command, 1, UNSUPPORTED, env={"DATABASE_URL": MYSQL}
        )
        for name, command in DATABASE_COMMANDS.items()
    ],
    loader_case(
        "DATABASE_URL-mariadb-with-password",
        "data-quality",
        1,
        "mariadb://coles:***@127.0.0.1:3306/coles: the mariadb scheme is not supported",
        env={"DATABASE_URL": f"mariadb://coles:{SECRET}@127.0.0.1:3306/coles"},
    ),
    loader_case(
        "DATABASE_URL-malformed-postgres",
        "data-quality",
        1,
        "postgres:/bad: not a database URL; use sqlite:///PATH",
        env={"DATABASE_URL": "postgres:/bad"},
    ),
    loader_case(
        "database-url-option-nonsense",
        "--database-url nonsense migrate",
        1,
        "cannot use the database nonsense: not a database URL",
    ),
    loader_case(
        "database-url-option-empty",
        ("--database-url", "", "data-quality"),
        2,
        "'--database-url': is empty",
    ),
    loader_case(
        "DATABASE_URL-port-not-a-number",
        "runs",
        1,
        "postgresql://postgres:***@127.0.0.1:abc/coles: its port is not a number",
        env={"DATABASE_URL": f"postgresql://postgres:{SECRET}@127.0.0.1:abc/coles"},
    ),
    loader_case(
        "DATABASE_URL-psycopg2-driver",
        "data-quality",
        1,
        "the psycopg2 driver is not supported (drop +psycopg2 from the scheme)",
        env={"DATABASE_URL": "postgresql+psycopg2://postgres@127.0.0.1/coles"},
    ),
    loader_case(
        "DATABASE_URL-sqlite-folder-missing",
        "update --products --once --no-progress",
        1,
        "the folder nonexistent-dir does not exist; create it, or give another path",
        env={"DATABASE_URL": "sqlite:///nonexistent-dir/x.db"},
    ),
    loader_case(
        "DATABASE_URL-sqlite-path-is-a-folder",
        "data-quality",
        1,
        "is a folder; name a database file inside it",
        env={"DATABASE_URL": f"sqlite:///{FOLDER}"},
    ),
    loader_case(
        "DATABASE_URL-sqlite-file-not-a-database",
        "data-quality",
        1,
        "is not an SQLite database",
        env={"DATABASE_URL": f"sqlite:///{FILE}"},
    ),
    loader_case(
        "DATABASE_URL-postgres-closed-port",
        "update --products --once --no-progress",
        1,
        "Connection refused (check --database-url or DATABASE_URL, and that the database "
        "server is running)",
        env={
            "DATABASE_URL": f"postgresql://postgres:{SECRET}@127.0.0.1:{CLOSED_PLACEHOLDER}/coles"
        },
    ),
    loader_case(
        "DATABASE_URL-postgres-unknown-host",
        "data-quality",
        1,
        "failed to resolve host 'no-such-host.invalid'",
        env={"DATABASE_URL": "postgresql://postgres@no-such-host.invalid/coles"},
    ),
    loader_case(
        "DATABASE_URL-postgres-port-of-another-server",
        "data-quality",
        1,
        "postgres@127.0.0.1:6379/coles?connect_timeout=2: connection timeout expired",
        env={"DATABASE_URL": "postgresql://postgres@127.0.0.1:6379/coles?connect_timeout=2"},
    ),
    loader_case(
        "DATABASE_URL-postgres-no-such-database",
        "data-quality",
        1,
        'database "no_such_database_x" does not exist',
        env={"DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/no_such_database_x"},
        postgres=True,
    ),
    # --- update -------------------------------------------------------------------------
    loader_case(
        "update-inbox-missing",
        f"update --products --once --no-progress --inbox {MISSING}",
        2,
        "does not exist: create it, or give the right one (--inbox or env COLES_PRODUCT_INBOX)",
        database=True,
    ),
    loader_case(
        "update-COLES_PRODUCT_INBOX-missing",
        "update --products --once --no-progress",
        2,
        "does not exist: create it",
        env={"COLES_PRODUCT_INBOX": MISSING},
        database=True,
    ),
    loader_case(
        "update-inbox-is-a-file",
        f"update --products --once --no-progress --inbox {FILE}",
        2,
        "is a file, not a folder: give the inbox folder",
        database=True,
    ),
    loader_case(
        "update-inbox-unreadable",
        f"update --products --once --no-progress --inbox {FOLDER}",
        2,
        "cannot be read and written by this user",
        database=True,
        unreadable=FOLDER,
    ),
    loader_case(
        "update-batch-size-zero",
        "update --products --once --batch-size 0",
        2,
        "0 is not in the range x>=1",
        database=True,
    ),
    loader_case(
        "update-batch-size-negative",
        "update --products --once --batch-size -5",
        2,
        "-5 is not in the range x>=1",
        database=True,
    ),
    loader_case(
        "update-batch-size-not-a-number",
        "update --products --once --batch-size lots",
        2,
        "'lots' is not a valid integer",
        database=True,
    ),
    loader_case(
        "update-pause-negative",
        "update --products --pause -1",
        2,
        "-1.0 is not in the range x>=0",
        database=True,
    ),
    loader_case(
        "update-max-failures-zero",
        "update --products --max-failures 0",
        2,
        "0 is not in the range x>=1",
        database=True,
    ),
    loader_case(
        "update-once-and-watch",
        "update --products --once --watch",
        2,
        "--once and --watch exclude each other",
        database=True,
    ),
    loader_case(
        "update-nothing-to-do",
        "update --once",
        2,
        "nothing to update: pass --products (or --post-process-only)",
        database=True,
    ),
    loader_case(
        "update-unknown-option",
        "update --products --inbx x",
        2,
        "No such option '--inbx'. Did you mean '--inbox'?",
        database=True,
    ),
    # --- report, runs --------------------------------------------------------------------
    loader_case(
        "report-out-is-a-folder", f"report --out {FOLDER}", 2, "is a directory", database=True
    ),
    loader_case(
        "report-out-under-a-file",
        f"report --out {FILE}/report.html",
        1,
        "products-store-0584.jsonl is a file, not a folder; choose another --out",
        database=True,
    ),
    loader_case(
        "report-runs-zero", "report --runs 0", 2, "0 is not in the range x>=1", database=True
    ),
    loader_case(
        "report-rows-negative", "report --rows -1", 2, "-1 is not in the range", database=True
    ),
    loader_case(
        "runs-limit-zero", "runs --limit 0", 2, "0 is not in the range x>=1", database=True
    ),
    # --- the diagnostics -----------------------------------------------------------------
    loader_case(
        "inspect-product-not-a-number",
        "inspect-product abc",
        2,
        "'abc' is not a valid integer",
        database=True,
    ),
    loader_case(
        "inspect-product-zero",
        "inspect-product 0",
        2,
        "0 is not in the range x>=1",
        database=True,
    ),
    loader_case(
        "inspect-product-unknown",
        "inspect-product 999999",
        1,
        "no product 999999 in the database (find-sku gives a SKU's product id)",
        database=True,
    ),
    loader_case(
        "find-sku-not-a-number",
        "find-sku abc",
        2,
        "coles sku 'abc' is not a positive integer",
        database=True,
    ),
    loader_case(
        "find-sku-negative",
        ("find-sku", "--", "-5"),
        2,
        "coles sku '-5' is not a positive integer",
        database=True,
    ),
    loader_case(
        "find-sku-unknown",
        "find-sku 999999",
        1,
        "coles SKU 999999 is not in the database",
        database=True,
    ),
    loader_case(
        "analyze-store-unknown",
        "analyze-store 9999",
        1,
        "no store '9999' of coles in the database (coles-loader data-quality lists the stores",
        database=True,
    ),
    loader_case(
        "analyze-store-empty",
        ("analyze-store", ""),
        2,
        "Invalid value for STORE_ID: empty store id",
        database=True,
    ),
    loader_case(
        "analyze-store-unknown-company",
        "analyze-store 0584 --company colse",
        1,
        "no store '0584' of colse in the database",
        database=True,
    ),
    loader_case(
        "compare-store-skus-unknown-store",
        f"compare-store-skus 9999 {FILE}",
        1,
        "no store '9999' of coles in the database",
        database=True,
    ),
    loader_case(
        "compare-store-skus-file-missing",
        f"compare-store-skus 0584 {MISSING}",
        2,
        "does not exist",
        database=True,
    ),
    loader_case(
        "compare-store-skus-file-is-a-folder",
        f"compare-store-skus 0584 {FOLDER}",
        2,
        "is a directory",
        database=True,
    ),
    loader_case(
        "queue-missing-barcodes-inbox-missing",
        f"queue-missing-barcodes --inbox {MISSING}",
        2,
        "does not exist: create it, or give the right one (--inbox or env COLES_ENRICHMENT_INBOX)",
        database=True,
    ),
    loader_case(
        "queue-missing-barcodes-COLES_ENRICHMENT_INBOX-missing",
        "queue-missing-barcodes",
        2,
        "does not exist: create it",
        env={"COLES_ENRICHMENT_INBOX": MISSING},
        database=True,
    ),
    loader_case(
        "queue-missing-barcodes-inbox-is-a-file",
        f"queue-missing-barcodes --inbox {FILE}",
        2,
        "is a file, not a folder",
        database=True,
    ),
    loader_case(
        "queue-missing-barcodes-limit-zero",
        "queue-missing-barcodes --limit 0",
        2,
        "0 is not in the range x>=1",
        database=True,
    ),
    loader_case(
        "queue-missing-barcodes-unknown-store",
        "queue-missing-barcodes --store 9999",
        1,
        "no store '9999' of coles in the database",
        database=True,
    ),
    loader_case(
        "queue-missing-barcodes-empty-store",
        ("queue-missing-barcodes", "--store", ""),
        2,
        "Invalid value for '--store': empty store id",
        database=True,
    ),
    # --- analyze-jsonl (no database) ------------------------------------------------------
    loader_case("analyze-jsonl-missing", f"analyze-jsonl {MISSING}", 2, "does not exist"),
    loader_case("analyze-jsonl-folder", f"analyze-jsonl {FOLDER}", 2, "is a directory"),
    loader_case(
        "analyze-jsonl-unreadable",
        f"analyze-jsonl {FILE}",
        2,
        "is not readable",
        unreadable=FILE,
    ),
    # --- frontier ------------------------------------------------------------------------
    loader_case("frontier-feed-no-redis", "frontier feed", 2, "Missing option '--redis'"),
    loader_case(
        "frontier-feed-redis-not-a-url",
        "frontier feed --redis nonsense",
        2,
        "nonsense: not a Redis URL; use redis://[:PASSWORD@]HOST:6379/0",
    ),
    loader_case(
        "frontier-feed-redis-http",
        "frontier feed --redis http://127.0.0.1:6379/0",
        2,
        "not a Redis URL",
    ),
    loader_case(
        "frontier-feed-COLES_FRONTIER_URL-bad-port",
        "frontier feed",
        2,
        "redis://:***@127.0.0.1:abc/0: its port is not a number from 0 to 65535",
        env={"COLES_FRONTIER_URL": f"redis://:{SECRET}@127.0.0.1:abc/0"},
    ),
    loader_case(
        "frontier-feed-redis-database-not-a-number",
        "frontier feed --redis redis://127.0.0.1:6379/frontier",
        2,
        "the database number 'frontier' is not a whole number",
    ),
    loader_case(
        "frontier-feed-redis-closed-port",
        f"frontier feed --redis redis://:{SECRET}@127.0.0.1:{CLOSED_PLACEHOLDER}/0",
        1,
        "Connection refused. (is Redis running there? Check --redis or COLES_FRONTIER_URL)",
    ),
    loader_case(
        "frontier-feed-redis-is-postgresql",
        "frontier feed --redis redis://127.0.0.1:5432/0",
        1,
        "cannot use the frontier at redis://127.0.0.1:5432/0",
    ),
    loader_case(
        "frontier-feed-inbox-missing",
        f"frontier feed --redis redis://127.0.0.1:{CLOSED_PLACEHOLDER}/0 --inbox {MISSING}",
        2,
        "does not exist: create it, or give the right one (--inbox or env COLES_ENRICHMENT_INBOX)",
    ),
    loader_case(
        "frontier-feed-COLES_ENRICHMENT_INBOX-is-a-file",
        f"frontier feed --redis redis://127.0.0.1:{CLOSED_PLACEHOLDER}/0",
        2,
        "is a file, not a folder",
        env={"COLES_ENRICHMENT_INBOX": FILE},
    ),
    loader_case(
        "frontier-feed-key-empty",
        ("frontier", "feed", "--redis", "redis://127.0.0.1:6379/0", "--key", ""),
        2,
        "'--key': is empty",
    ),
    loader_case(
        "frontier-status-COLES_FRONTIER_KEY-empty-option",
        (
            "frontier",
            "status",
            "--redis",
            f"redis://127.0.0.1:{CLOSED_PLACEHOLDER}/0",
            "--key",
            " ",
        ),
        2,
        "is empty",
    ),
    loader_case(
        "frontier-status-redis-closed-port",
        f"frontier status --redis redis://127.0.0.1:{CLOSED_PLACEHOLDER}/0",
        1,
        "Connection refused",
    ),
    loader_case(
        "frontier-status-COLES_FRONTIER_URL-not-a-url",
        "frontier status",
        2,
        "not a Redis URL",
        env={"COLES_FRONTIER_URL": "127.0.0.1:6379"},
    ),
    loader_case("frontier-unknown-command", "frontier drain", 2, "No such command 'drain'"),
    # --- schedule and jobs ---------------------------------------------------------------
    loader_case("schedule-node-ftp", "schedule --node ftp://x", 2, "not a scrapyd URL: ftp://x"),
    loader_case(
        "schedule-SCRAPYD_URL-second-node-bad",
        "schedule",
        2,
        "not a scrapyd URL: ftp://y",
        env={"SCRAPYD_URL": f"http://127.0.0.1:{CLOSED_PLACEHOLDER} ftp://y"},
    ),
    loader_case(
        "schedule-node-bad-port",
        f"schedule --node http://crawler:{SECRET}@127.0.0.1:99999",
        2,
        "bad port in http://127.0.0.1:99999",
    ),
    loader_case(
        "schedule-node-unreachable",
        f"schedule --node http://crawler:{SECRET}@127.0.0.1:{CLOSED_PLACEHOLDER}",
        1,
        "unreachable (connection refused): is scrapyd running there? Check --node or SCRAPYD_URL",
    ),
    loader_case("schedule-every-words", "schedule --every soon", 2, "is not an interval like 30m"),
    loader_case("schedule-every-zero", "schedule --every 0m", 2, "must be longer than 0"),
    loader_case("schedule-every-negative", "schedule --every -5m", 2, "'-5m' is not an interval"),
    loader_case(
        "schedule-every-too-long",
        "schedule --every 99999999999d",
        2,
        "is longer than 366d: use --cron for rarer submissions",
    ),
    loader_case("schedule-every-empty", ("schedule", "--every", ""), 2, "'--every': is empty"),
    loader_case(
        "schedule-cron-out-of-range",
        ("schedule", "--cron", "61 * * * *"),
        2,
        "'61 * * * *' is not a cron expression like '*/30 * * * *'",
    ),
    loader_case(
        "schedule-cron-never",
        ("schedule", "--cron", "0 0 30 2 *"),
        2,
        "'0 0 30 2 *' never comes: check its day and month",
    ),
    loader_case("schedule-cron-empty", ("schedule", "--cron", ""), 2, "'--cron': is empty"),
    loader_case(
        "schedule-once-and-every", "schedule --once --every 5m", 2, "--once excludes --every"
    ),
    loader_case(
        "schedule-max-runs-zero", "schedule --every 1m --max-runs 0", 2, "0 is not in the range"
    ),
    loader_case(
        "schedule-max-failures-zero",
        "schedule --every 1m --max-failures 0",
        2,
        "0 is not in the range",
    ),
    loader_case("schedule-setting-no-value", "schedule -s DOWNLOAD_DELAY", 2, "is not NAME=VALUE"),
    loader_case("schedule-argument-no-name", "schedule -a =0584", 2, "'=0584' is not NAME=VALUE"),
    loader_case("schedule-spider-empty", ("schedule", "--spider", ""), 2, "'--spider': is empty"),
    loader_case(
        "schedule-project-empty", ("schedule", "--project", ""), 2, "'--project': is empty"
    ),
    loader_case(
        "schedule-egg-version-empty",
        ("schedule", "--egg-version", ""),
        2,
        "'--egg-version': is empty",
    ),
    loader_case("jobs-finished-negative", "jobs --finished -1", 2, "-1 is not in the range x>=0"),
    loader_case("jobs-node-bad-scheme", "jobs --node nonsense://x", 2, "not a scrapyd URL"),
    loader_case(
        "jobs-SCRAPYD_URL-unreachable",
        "jobs",
        1,
        "unreachable (connection refused): is scrapyd running there?",
        env={"SCRAPYD_URL": f"http://127.0.0.1:{CLOSED_PLACEHOLDER}"},
    ),
    loader_case("jobs-project-empty", ("jobs", "--project", ""), 2, "'--project': is empty"),
    # --- replica -------------------------------------------------------------------------
    loader_case(
        "replica-products-negative",
        "replica --products -1",
        2,
        "argument --products: -1 is out of range: give at least 0",
    ),
    loader_case(
        "replica-port-out-of-range",
        "replica --port 99999",
        2,
        "99999 is out of range: give from 0 to 65535",
    ),
    loader_case(
        "replica-port-not-a-number", "replica --port web", 2, "'web' is not a whole number"
    ),
    loader_case(
        "replica-catalogue-missing",
        f"replica --catalogue {MISSING}",
        2,
        "No such file or directory",
    ),
    loader_case("replica-catalogue-folder", f"replica --catalogue {FOLDER}", 2, "Is a directory"),
    loader_case("replica-config-not-json", ("replica", "--config", "{bad"), 2, "error: Expecting"),
    loader_case("replica-error-share", "replica --error-share 2", 2, "error_share: out of range"),
    loader_case(
        "replica-api-key", "replica --api-key xyz", 2, "32 lowercase hexadecimal characters"
    ),
    loader_case(
        "replica-export-into-a-folder",
        f"replica --products 5 --export {FOLDER}",
        1,
        "replica: cannot write",
    ),
    # --- the command line itself ---------------------------------------------------------
    loader_case("unknown-command", "imprt", 2, "No such command 'imprt'"),
]


def _loader_ids(cases: list[LoaderCase]) -> list[pytest.ParameterSet]:
    return [pytest.param(c, id=c.id) for c in cases]


@dataclass
class Workspace:
    """The current folder of the command: the default inboxes with a file each, a product
    file, an empty folder; the paths the placeholders stand for."""

    root: Path
    closed_port: int

    @property
    def file(self) -> Path:
        return self.root / "products-store-0584.jsonl"

    @property
    def folder(self) -> Path:
        return self.root / "empty"

    def fill(self, text: str) -> str:
        return (
            text.replace(MISSING, str(self.root / "missing" / "inbox"))
            .replace(FILE, str(self.file))
            .replace(FOLDER, str(self.folder))
            .replace(CLOSED_PLACEHOLDER, str(self.closed_port))
        )

    def path(self, placeholder: str) -> Path:
        return Path(self.fill(placeholder))


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    root = tmp_path / "work"
    for inbox, rows in (
        ("inboxes/product_inbox", canonical_rows("0584", range(1, 6))),
        ("inboxes/barcode_enrichment_inbox", [{"sku": 7}, {"sku": 8}]),
    ):
        (root / inbox).mkdir(parents=True)
        write_jsonl(root / inbox / "waiting.jsonl", rows)
    (root / "empty").mkdir()
    space = Workspace(root, free_port())
    write_jsonl(space.file, canonical_rows("0584", range(1, 4)))
    return space


def file_tree(root: Path) -> dict[str, str]:
    """Every path under ``root`` with a digest of its bytes ("dir" for folders)."""
    return {
        str(path.relative_to(root)): "dir"
        if path.is_dir()
        else hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
    }


def table_counts(url: str) -> dict[str, int]:
    """The number of rows of every table (the schema is there: the fixtures migrate it)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            return {
                table.name: conn.scalar(select(func.count()).select_from(table)) or 0
                for table in Base.metadata.sorted_tables
                if table.name in tables
            }
    finally:
        engine.dispose()


def error_lines(stderr: str) -> list[str]:
    """stderr's lines without blanks and the usage a usage error repeats (Click's
    "Usage:" and "Try ... --help" lines, argparse's indented usage block)."""
    lines, in_usage = [], False
    for line in stderr.splitlines():
        if not line.strip():
            continue
        if line.startswith(("Usage:", "usage:")):
            in_usage = True
            continue
        if in_usage and line.startswith(" "):
            continue
        in_usage = False
        if line.startswith("Try '") and line.rstrip().endswith("for help."):
            continue
        lines.append(line)
    return lines


# Root reads any file whatever its mode: an unreadable path is tried by a root process
# without the capabilities that override file permissions (util-linux's setpriv).
_WITHOUT_READ_OVERRIDE = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


def run_loader_case(
    bad: LoaderCase, space: Workspace, database_url: str, prefix: Sequence[str] = ()
) -> subprocess.CompletedProcess[str]:
    """``coles-loader`` (``python -m loaders``, this checkout's code) in the workspace."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("COLES_", "SCRAPYD_")) and k != "DATABASE_URL"
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT), env.get("PYTHONPATH")]))
    env["DATABASE_URL"] = database_url
    env.update({name: space.fill(value) for name, value in bad.env.items()})
    return subprocess.run(
        [*prefix, sys.executable, "-m", "loaders", *(space.fill(a) for a in bad.args)],
        cwd=space.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def check_loader_case(bad: LoaderCase, space: Workspace, database_url: str) -> None:
    """Run ``bad`` and assert the whole promise: status, one line, no traceback, no
    password, nothing written or lost."""
    locked: Path | None = None
    prefix: list[str] = []
    if bad.unreadable is not None:
        if os.geteuid() == 0:
            require(
                shutil.which("setpriv") is not None, "setpriv, to run as root without read override"
            )
            prefix = _WITHOUT_READ_OVERRIDE
        locked = space.path(bad.unreadable)
        locked.chmod(0)
    before = file_tree(space.root)
    try:
        proc = run_loader_case(bad, space, database_url, prefix)
    finally:
        if locked is not None:
            locked.chmod(0o755)
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output, output
    assert SECRET not in output, output
    assert proc.returncode == bad.status, output
    lines = error_lines(proc.stderr)
    assert len(lines) == 1, output
    assert bad.phrase in lines[0], lines[0]
    assert file_tree(space.root) == before  # no file moved, changed or created


@pytest.mark.parametrize("bad", _loader_ids([c for c in LOADER_CASES if not c.database]))
def test_a_bad_value_is_one_line_with_its_exit_status_and_changes_nothing(
    bad: LoaderCase, workspace: Workspace, request: pytest.FixtureRequest
) -> None:
    """Cases before any database is opened, or whose database URL is the bad value: the
    default URL points into the workspace, so a database file made by mistake shows."""
    if bad.postgres:
        request.getfixturevalue("postgres_server_url")  # PostgreSQL must be there to say so
    check_loader_case(bad, workspace, f"sqlite:///{workspace.root / 'unused.sqlite3'}")


@pytest.mark.parametrize("bad", _loader_ids([c for c in LOADER_CASES if c.database]))
def test_a_bad_value_on_a_database_is_one_line_and_changes_no_row(
    bad: LoaderCase, workspace: Workspace, database_url: str, tmp_path: Path
) -> None:
    """Cases of commands that open the database, on SQLite and PostgreSQL holding products
    and an import run: after the bad command, every table has the rows it had."""
    seed = tmp_path / "seed"
    seed.mkdir()
    write_jsonl(seed / "coles_store-0584.jsonl", canonical_rows("0584", range(1, 9)))
    loaded = run_loader(
        database_url, "update", "--products", "--once", "--no-progress", "--inbox", str(seed)
    )
    assert loaded.exit_code == 0, loaded.output
    counts = table_counts(database_url)
    assert counts["products"] == 8
    check_loader_case(bad, workspace, database_url)
    assert table_counts(database_url) == counts


def test_every_command_has_a_case() -> None:
    """A new command (or one dropped from the table) shows here."""
    import click

    from loaders.cli import cli

    context = click.Context(cli)
    loaded = {name: cli.get_command(context, name) for name in cli.list_commands(context)}
    commands = [
        f"{name} {sub}" if sub else name
        for name, command in loaded.items()
        for sub in (getattr(command, "commands", None) or [""])
    ]
    assert len(commands) > 15

    def command_line(bad: LoaderCase) -> str:
        words = list(bad.args[2:] if bad.args[:1] == ("--database-url",) else bad.args)
        return " ".join(words) + " "

    lines = [command_line(bad) for bad in LOADER_CASES]
    assert [c for c in commands if not any(line.startswith(f"{c} ") for line in lines)] == []


# =======================================================================================
# The crawls
# =======================================================================================

PRODUCTS = 60
CATALOGUE = Catalogue.generate(PRODUCTS, seed=1)
SKUS = [p.sku for p in list(CATALOGUE)[:8]]
CLOSED_PORT = "127.0.0.1:1"  # a port nothing listens on
FAST = ["-s", "DOWNLOAD_DELAY=0", "-s", "AUTOTHROTTLE_ENABLED=False", "-s", "RETRY_TIMES=1"]
COMMANDS: dict[str, list[str]] = {
    "coles_barcodes": ["crawl", "coles_barcodes", *FAST_CRAWL, "-s", "RETRY_TIMES=1"],
    "coles_products": ["crawl", "coles_products", *FAST],
    "site-check": ["site-check", "--base-url", "{site}", *FAST],
    "site_check": ["crawl", "site_check", "-a", "base_url={site}", *FAST],
}


@dataclass(frozen=True)
class CrawlCase:
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

CRAWL_CASES = [
    # --- scrapy crawl coles_barcodes: arguments ---------------------------------------------
    CrawlCase("unknown-argument", B, a("stor", "0584"), phrase="unknown argument -a stor"),
    CrawlCase("inbox-argument-missing", B, a("inbox", "{work}/nowhere"), phrase="does not exist"),
    CrawlCase("inbox-argument-empty", B, a("inbox", ""), phrase="-a inbox= is empty"),
    CrawlCase(
        "inbox-argument-a-file", B, a("inbox", "{work}/inbox/skus.jsonl"), phrase="is a file"
    ),
    CrawlCase(
        "inbox-env-missing",
        B,
        env={"COLES_ENRICHMENT_INBOX": "{work}/nowhere"},
        phrase="COLES_ENRICHMENT_INBOX) {work}/nowhere does not exist",
    ),
    CrawlCase(
        "base-url-env-not-a-url",
        B,
        env={"COLES_BASE_URL": "notaurl"},
        phrase="COLES_BASE_URL must be an http:// or https:// URL",
    ),
    CrawlCase(
        "base-url-argument-ftp",
        B,
        a("base_url", "ftp://{site}"),
        phrase="-a base_url must be an http:// or https:// URL",
    ),
    CrawlCase(
        "base-url-unreachable",
        B,
        env={"COLES_BASE_URL": f"http://{CLOSED_PORT}"},
        status=4,
        phrase="(site_unreachable: home page",
    ),
    CrawlCase(
        "store-argument-letters", B, a("store", "abc"), phrase="'abc' is not a Coles store id"
    ),
    CrawlCase(
        "store-env-malformed",
        B,
        env={"COLES_STORE_ID": "05-84"},
        phrase="COLES_STORE_ID: '05-84' is not a Coles store id",
    ),
    CrawlCase(
        "limit-negative", B, a("limit", "-1"), phrase="-a limit must be a whole number of SKUs"
    ),
    CrawlCase("limit-not-a-number", B, a("limit", "ten"), phrase="not 'ten'"),
    # --- coles_barcodes: settings -----------------------------------------------------------
    CrawlCase(
        "max-skus-negative", B, s("COLES_MAX_SKUS", "-1"), phrase=f"COLES_MAX_SKUS {NUMBER} 0"
    ),
    CrawlCase(
        "recheck-days-negative",
        B,
        s("COLES_RECHECK_DAYS", "-1"),
        phrase="COLES_RECHECK_DAYS must be a number of 0 or more (days)",
    ),
    CrawlCase(
        "upsert-batch-zero",
        B,
        s("COLES_UPSERT_BATCH_SIZE", "0"),
        phrase=f"COLES_UPSERT_BATCH_SIZE {NUMBER} 1 or more",
    ),
    CrawlCase(
        "upsert-batch-not-a-number", B, s("COLES_UPSERT_BATCH_SIZE", "lots"), phrase="not 'lots'"
    ),
    CrawlCase(
        "upsert-delay-negative",
        B,
        s("COLES_UPSERT_MAX_DELAY", "-1"),
        phrase="COLES_UPSERT_MAX_DELAY must be a number of 0 or more",
    ),
    CrawlCase(
        "db-write-thread-not-a-boolean",
        B,
        s("COLES_DB_WRITE_THREAD", "maybe"),
        phrase="COLES_DB_WRITE_THREAD must be true or false",
    ),
    CrawlCase(
        "page-fallback-not-a-boolean",
        B,
        s("COLES_PRODUCT_PAGE_FALLBACK", "yes"),
        phrase="COLES_PRODUCT_PAGE_FALLBACK must be true or false",
    ),
    CrawlCase(
        "browser-pages-negative",
        B,
        s("COLES_BOTCHECK_MAX_BROWSER_PAGES", "-1"),
        phrase=f"COLES_BOTCHECK_MAX_BROWSER_PAGES {NUMBER} 0",
    ),
    CrawlCase(
        "graphql-batch-zero",
        B,
        s("COLES_GRAPHQL_BATCH", "0"),
        phrase=f"COLES_GRAPHQL_BATCH {NUMBER} 1 or more",
    ),
    CrawlCase(
        "block-retries-negative",
        B,
        s("COLES_BLOCK_MAX_RETRIES", "-1"),
        phrase=f"COLES_BLOCK_MAX_RETRIES {NUMBER} 0",
    ),
    CrawlCase(
        "block-backoff-negative",
        B,
        s("COLES_BLOCK_BACKOFF", "-5"),
        phrase="COLES_BLOCK_BACKOFF must be a number of 0 or more (seconds), not '-5'",
    ),
    CrawlCase(
        "proxies-nonsense", B, env={"COLES_PROXIES": "nonsense"}, phrase="COLES_PROXIES entry 1"
    ),
    CrawlCase(
        "proxies-ftp",
        B,
        env={"COLES_PROXIES": "ftp://proxy.example:21"},
        phrase="is not http://[user:password@]host:port",
    ),
    CrawlCase(
        "proxies-missing-file",
        B,
        env={"COLES_PROXIES": "@{work}/proxies.txt"},
        phrase="COLES_PROXIES: cannot read {work}/proxies.txt",
    ),
    CrawlCase(
        "proxy-unreachable",
        B,
        env={"COLES_PROXIES": f"http://{CLOSED_PORT}"},
        status=4,
        phrase="(site_unreachable: home page",
    ),
    CrawlCase(
        "chromium-missing",
        B,
        env={"COLES_CHROMIUM_PATH": "{work}/chromium"},
        phrase="COLES_CHROMIUM_PATH {work}/chromium: no executable there",
    ),
    CrawlCase(
        "chromium-not-executable",
        B,
        env={"COLES_CHROMIUM_PATH": "{work}/inbox/skus.jsonl"},
        phrase="no executable there",
    ),
    CrawlCase(
        "chromium-no-browser",
        B,
        env={"COLES_CHROMIUM_PATH": "/bin/false"},
        phrase="COLES_CHROMIUM_PATH /bin/false: no browser starts there (--version exited",
    ),
    CrawlCase(
        "chromium-script-exits-1",
        B,
        env={"COLES_CHROMIUM_PATH": "{work}/bin/not-a-browser"},
        phrase="COLES_CHROMIUM_PATH {work}/bin/not-a-browser: no browser starts there",
    ),
    # No COLES_CHROMIUM_PATH and no Debian Chromium: the settings give Playwright no
    # executable_path (as here) and it looks for its own browser, not installed here.
    CrawlCase(
        "chromium-unset-and-none-installed",
        B,
        s("PLAYWRIGHT_LAUNCH_OPTIONS", '{"headless": true, "args": ["--no-sandbox"]}'),
        env={"PLAYWRIGHT_BROWSERS_PATH": "{work}/no-browsers"},
        phrase="COLES_CHROMIUM_PATH is not set (nor found: /usr/bin/chromium) and Playwright's "
        "own browser does not start (BrowserType.launch: Executable doesn't exist at {work}",
    ),
    CrawlCase(
        "stats-file-folder-missing",
        B,
        env={"COLES_STATS_FILE": "{work}/nowhere/stats.json"},
        phrase="the folder {work}/nowhere does not exist",
    ),
    CrawlCase(
        "stats-file-is-a-folder",
        B,
        env={"COLES_STATS_FILE": "{work}/inbox"},
        phrase="COLES_STATS_FILE {work}/inbox: is a folder",
    ),
    CrawlCase(
        "robots-not-a-boolean",
        B,
        s("ROBOTSTXT_OBEY", "maybe"),
        phrase="ROBOTSTXT_OBEY must be true or false",
    ),
    CrawlCase(
        "autothrottle-not-a-boolean",
        B,
        s("AUTOTHROTTLE_ENABLED", "often"),
        phrase="AUTOTHROTTLE_ENABLED must be true or false",
    ),
    CrawlCase(
        "concurrent-requests-zero",
        B,
        s("CONCURRENT_REQUESTS", "0"),
        phrase=f"CONCURRENT_REQUESTS {NUMBER} 1 or more",
    ),
    CrawlCase(
        "download-delay-negative",
        B,
        s("DOWNLOAD_DELAY", "-0.5"),
        phrase="DOWNLOAD_DELAY must be a number of 0 or more",
    ),
    CrawlCase("retry-times-negative", B, s("RETRY_TIMES", "-1"), phrase=f"RETRY_TIMES {NUMBER} 0"),
    CrawlCase(
        "retry-backoff-not-a-number",
        B,
        s("RETRY_BACKOFF_BASE", "soon"),
        phrase="RETRY_BACKOFF_BASE must be a number",
    ),
    CrawlCase(
        "retry-after-max-negative",
        B,
        s("RETRY_AFTER_MAX", "-1"),
        phrase="RETRY_AFTER_MAX must be a number of 0 or more",
    ),
    CrawlCase(
        "monitor-gtin-share-not-a-boolean",
        B,
        s("COLES_MONITOR_GTIN_SHARE", "perhaps"),
        phrase="COLES_MONITOR_GTIN_SHARE must be true or false",
    ),
    CrawlCase(
        "monitor-gtin-drop-above-one",
        B,
        s("COLES_MONITOR_GTIN_DROP", "2"),
        phrase="COLES_MONITOR_GTIN_DROP must be a number from 0 to 1",
    ),
    CrawlCase(
        "monitor-gtin-history-zero",
        B,
        s("COLES_MONITOR_GTIN_HISTORY", "0"),
        phrase=f"COLES_MONITOR_GTIN_HISTORY {NUMBER} 1 or more",
    ),
    CrawlCase(
        "monitor-min-records-negative",
        B,
        s("COLES_MONITOR_GTIN_MIN_RECORDS", "-1"),
        phrase=f"COLES_MONITOR_GTIN_MIN_RECORDS {NUMBER} 1 or more",
    ),
    CrawlCase(
        "monitor-min-share-above-one",
        B,
        s("COLES_MONITOR_MIN_GTIN_SHARE", "1.5"),
        phrase="COLES_MONITOR_MIN_GTIN_SHARE must be a number from 0 to 1",
    ),
    CrawlCase(
        "monitor-format-share-negative",
        B,
        s("COLES_MONITOR_MAX_FORMAT_ERROR_SHARE", "-0.1"),
        phrase="COLES_MONITOR_MAX_FORMAT_ERROR_SHARE must be a number from 0 to 1",
    ),
    # --- coles_barcodes: the frontier and the database -----------------------------------
    CrawlCase(
        "frontier-env-not-redis",
        B,
        env={"COLES_FRONTIER_URL": "notredis"},
        phrase="COLES_FRONTIER_URL must be a Redis URL",
    ),
    CrawlCase(
        "frontier-argument-http",
        B,
        a("frontier", "http://:s3cret@127.0.0.1:6379/0"),
        phrase="-a frontier must be a Redis URL",
    ),
    CrawlCase(
        "frontier-unreachable",
        B,
        env={"COLES_FRONTIER_URL": f"redis://{CLOSED_PORT}/0"},
        status=8,
        phrase="(frontier_unavailable: redis://127.0.0.1:1/0",
    ),
    CrawlCase(
        "frontier-claim-timeout-zero",
        B,
        s("COLES_FRONTIER_CLAIM_TIMEOUT", "0"),
        phrase="COLES_FRONTIER_CLAIM_TIMEOUT must be a number above 0",
    ),
    CrawlCase(
        "frontier-batch-zero",
        B,
        s("COLES_FRONTIER_BATCH", "0"),
        phrase=f"COLES_FRONTIER_BATCH {NUMBER} 1 or more",
    ),
    CrawlCase(
        "frontier-prefetch-negative",
        B,
        s("COLES_FRONTIER_PREFETCH", "-1"),
        phrase=f"COLES_FRONTIER_PREFETCH {NUMBER} 0",
    ),
    CrawlCase(
        "frontier-poll-zero",
        B,
        s("COLES_FRONTIER_POLL", "0"),
        phrase="COLES_FRONTIER_POLL must be a number above 0",
    ),
    CrawlCase(
        "frontier-deliveries-zero",
        B,
        s("COLES_FRONTIER_MAX_DELIVERIES", "0"),
        phrase=f"COLES_FRONTIER_MAX_DELIVERIES {NUMBER} 1 or more",
    ),
    CrawlCase(
        "frontier-worker-not-a-switch",
        B,
        s("COLES_FRONTIER_WORKER", "maybe"),
        phrase="COLES_FRONTIER_WORKER must be true or false",
    ),
    CrawlCase(
        "database-unreachable",
        B,
        env={"DATABASE_URL": f"postgresql://postgres@{CLOSED_PORT}/x"},
        status=7,
        phrase="(database_unavailable: postgresql://postgres@127.0.0.1:1/x",
    ),
    CrawlCase(
        "database-scheme-unsupported",
        B,
        env={"DATABASE_URL": "mysql://x@y/z"},
        phrase="postgresql",
    ),
    # --- scrapy crawl coles_products --------------------------------------------------------
    CrawlCase("listing-unknown-argument", P, a("store", "0584"), phrase="did you mean stores?"),
    CrawlCase(
        "listing-stores-letters",
        P,
        a("stores", "abc"),
        phrase="-a stores: 'abc' is not a Coles store id",
    ),
    CrawlCase("listing-stores-empty", P, a("stores", ""), phrase="-a stores= is empty"),
    CrawlCase(
        "listing-stores-only-commas", P, a("stores", ",,"), phrase="-a stores names no store"
    ),
    CrawlCase(
        "listing-store-env-malformed",
        P,
        env={"COLES_STORE_ID": "0584;0601"},
        phrase="COLES_STORE_ID: '0584;0601' is not a Coles store id",
    ),
    CrawlCase(
        "listing-inbox-a-file",
        P,
        a("inbox", "{work}/product_inbox/earlier.jsonl"),
        phrase="the product inbox (-a inbox) {work}/product_inbox/earlier.jsonl is a file",
    ),
    CrawlCase(
        "listing-inbox-env-a-file",
        P,
        env={"COLES_PRODUCT_INBOX": "{work}/product_inbox/earlier.jsonl"},
        phrase="(COLES_PRODUCT_INBOX) {work}/product_inbox/earlier.jsonl is a file",
    ),
    CrawlCase(
        "listing-base-url-ftp",
        P,
        env={"COLES_BASE_URL": "ftp://{site}"},
        phrase="COLES_BASE_URL must be an http:// or https:// URL",
    ),
    CrawlCase(
        "listing-base-url-unreachable",
        P,
        a("base_url", f"http://{CLOSED_PORT}"),
        status=4,
        phrase="(site_unusable",
    ),
    CrawlCase(
        "listing-page-size-zero",
        P,
        s("COLES_LISTING_PAGE_SIZE", "0"),
        phrase=f"COLES_LISTING_PAGE_SIZE {NUMBER} 1 or more",
    ),
    CrawlCase(
        "listing-max-pages-negative",
        P,
        s("COLES_LISTING_MAX_PAGES", "-1"),
        phrase=f"COLES_LISTING_MAX_PAGES {NUMBER} 1 or more",
    ),
    CrawlCase(
        "listing-max-failed-negative",
        P,
        s("COLES_LISTING_MAX_FAILED_PAGES", "-1"),
        phrase=f"COLES_LISTING_MAX_FAILED_PAGES {NUMBER} 0",
    ),
    CrawlCase(
        "listing-queue-not-a-boolean",
        P,
        s("COLES_LISTING_QUEUE_MISSING_BARCODES", "sometimes"),
        phrase="COLES_LISTING_QUEUE_MISSING_BARCODES must be true or false",
    ),
    CrawlCase(
        "listing-queue-inbox-a-file",
        P,
        s("COLES_LISTING_QUEUE_MISSING_BARCODES", "True"),
        env={"COLES_ENRICHMENT_INBOX": "{work}/inbox/skus.jsonl"},
        phrase="COLES_ENRICHMENT_INBOX {work}/inbox/skus.jsonl is a file",
    ),
    CrawlCase(
        "listing-proxies-nonsense",
        P,
        s("COLES_PROXIES", "nonsense"),
        phrase="COLES_PROXIES entry 1",
    ),
    CrawlCase(
        "listing-chromium-script-exits-1",
        P,
        env={"COLES_CHROMIUM_PATH": "{work}/bin/not-a-browser"},
        phrase="COLES_CHROMIUM_PATH {work}/bin/not-a-browser: no browser starts there",
    ),
    CrawlCase(
        "listing-stats-file-folder-missing",
        P,
        env={"COLES_STATS_FILE": "{work}/nowhere/stats.json"},
        phrase="does not exist",
    ),
    # --- scrapy site-check ------------------------------------------------------------------
    CrawlCase("check-sku-letters", SC, ("--sku", "milk"), phrase="a Coles SKU is a number"),
    CrawlCase("check-sku-negative", SC, ("--sku", "-5"), phrase="'-5' is not a SKU"),
    CrawlCase(
        "check-save-a-file",
        SC,
        ("--save", "{work}/inbox/skus.jsonl"),
        phrase="--save/-a save {work}/inbox/skus.jsonl is a file, not a folder",
    ),
    CrawlCase(
        "check-save-cannot-create",
        SC,
        ("--save", "/proc/no-such-folder"),
        phrase="cannot create it",
    ),
    CrawlCase(
        "check-base-url-no-scheme",
        SC,
        ("--base-url", "www.coles.com.au"),
        phrase="--base-url/-a base_url must be an http:// or https:// URL",
    ),
    CrawlCase(
        "check-base-url-unreachable",
        SC,
        ("--base-url", f"http://{CLOSED_PORT}"),
        status=4,
        phrase="(site_unreachable",
    ),
    CrawlCase(
        "check-store-letters",
        SC,
        ("--store", "abc"),
        phrase="--store/-a store: 'abc' is not a Coles store id",
    ),
    CrawlCase(
        "check-proxies-missing-file",
        SC,
        s("COLES_PROXIES", "@{work}/proxies.txt"),
        phrase="cannot read",
    ),
    CrawlCase(
        "check-chromium-missing",
        SC,
        env={"COLES_CHROMIUM_PATH": "{work}/chromium"},
        phrase="no executable there",
    ),
    CrawlCase(
        "check-chromium-no-browser",
        SC,
        env={"COLES_CHROMIUM_PATH": "/bin/false"},
        phrase="COLES_CHROMIUM_PATH /bin/false: no browser starts there",
    ),
    CrawlCase(
        "check-retry-times-negative", SC, s("RETRY_TIMES", "-1"), phrase=f"RETRY_TIMES {NUMBER} 0"
    ),
    # --- scrapy crawl site_check (as scrapyd runs it) ----------------------------------------
    CrawlCase(
        "check-spider-unknown-argument", SP, a("sku", "1018067"), phrase="did you mean skus?"
    ),
    CrawlCase(
        "check-spider-skus-letters", SP, a("skus", "1018067,milk"), phrase="'milk' is not a SKU"
    ),
    CrawlCase(
        "check-spider-save-a-file",
        SP,
        a("save", "{work}/inbox/skus.jsonl"),
        phrase="is a file, not a folder",
    ),
    CrawlCase(
        "check-spider-base-url-ftp",
        SP,
        a("base_url", "ftp://{site}"),
        phrase="must be an http:// or https:// URL",
    ),
    CrawlCase("check-spider-store-empty", SP, a("store", ""), phrase="-a store= is empty"),
    CrawlCase(
        "check-spider-base-url-unreachable",
        SP,
        a("base_url", f"http://{CLOSED_PORT}"),
        status=4,
        phrase="(site_unreachable",
    ),
]
# The cases where the barcode crawl's database is involved: also run on PostgreSQL.
CRAWL_DATABASE_CASES = {
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
class CrawlRun:
    returncode: int
    output: str


def work_folder(root: Path) -> Path:
    """The enrichment inbox with one file of SKUs, the product inbox with an earlier store
    file: what a wrong value must leave as it was; and ``bin/not-a-browser``, an
    executable that is no browser (it exits 1)."""
    work = root / "work"
    (work / "inbox").mkdir(parents=True)
    write_jsonl(work / "inbox" / "skus.jsonl", [{"sku": sku} for sku in SKUS])
    (work / "product_inbox").mkdir()
    write_jsonl(work / "product_inbox" / "earlier.jsonl", canonical_rows("0584", range(1, 4)))
    (work / "bin").mkdir()
    shell_script(work / "bin" / "not-a-browser", "exit 1")
    return work


def shell_script(path: Path, body: str) -> Path:
    """An executable ``/bin/sh`` script."""
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def file_bytes(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder``, by relative path, with its bytes."""
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def crawl_row_counts(database_url: str, leave_out: tuple[str, ...] = ()) -> dict[str, int]:
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


def crawl_case_command(
    case: CrawlCase, site: str, work: Path, database_url: str
) -> tuple[list[str], dict[str, str]]:
    """The case's command line and environment: the project's inboxes in ``work``, a clean
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
    return [fill(part) for part in command], env


def run_crawl_case(case: CrawlCase, site: str, work: Path, database_url: str) -> CrawlRun:
    """The case's command, a real subprocess from the project folder."""
    command, env = crawl_case_command(case, site, work, database_url)
    proc = subprocess.run(
        command,
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    return CrawlRun(proc.returncode, proc.stdout + proc.stderr)


def assert_one_clear_line(case: CrawlCase, run: CrawlRun, work: Path) -> None:
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


def check_crawl_case(case: CrawlCase, site: ReplicaProcess, root: Path, database_url: str) -> None:
    work = work_folder(root)
    before = file_bytes(work)
    # a crawl that started records itself in the run ledger: that row is by design
    ledger = () if case.status == 2 else ("crawl_runs",)
    counts = crawl_row_counts(database_url, ledger)
    run = run_crawl_case(case, site.url, work, database_url)
    assert_one_clear_line(case, run, work)
    assert file_bytes(work) == before  # inboxes unmoved and byte-identical, nothing added
    assert crawl_row_counts(database_url, ledger) == counts


@pytest.mark.parametrize("case", [case.param() for case in CRAWL_CASES])
def test_a_wrong_value_stops_the_command_with_one_clear_line_and_touches_nothing(
    case: CrawlCase, site: ReplicaProcess, tmp_path: Path
) -> None:
    database = seeded(f"sqlite:///{tmp_path / 'crawl.sqlite3'}", tmp_path)
    check_crawl_case(case, site, tmp_path, database)


@pytest.mark.parametrize(
    "case", [case.param() for case in CRAWL_CASES if case.id in CRAWL_DATABASE_CASES]
)
def test_a_wrong_value_leaves_the_database_of_the_barcode_crawl_as_it_was(
    case: CrawlCase, site: ReplicaProcess, tmp_path: Path, database_url: str
) -> None:
    """The same cases on SQLite and PostgreSQL: the rows of the crawl's own database (the
    unreachable database case reads another) stay as they were."""
    check_crawl_case(case, site, tmp_path, seeded(database_url, tmp_path))


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
    covered = " ".join(" ".join([*case.args, *case.env]) for case in CRAWL_CASES)
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
    before = file_bytes(work)
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
    assert file_bytes(work) == before


# --- A browser that passes the start-up check and still does not start ---------------------

CHROMIUM = os.environ.get("COLES_CHROMIUM_PATH", "/usr/bin/chromium")
BROWSER_UNAVAILABLE = "The crawl ended with status 2 (browser_unavailable: COLES_CHROMIUM_PATH"


@pytest.fixture(scope="module")
def challenged_site() -> Iterator[ReplicaProcess]:
    """The replica with its JavaScript challenge on every content request."""
    with ReplicaProcess(products=PRODUCTS, seed=1, challenge=True) as replica:
        yield replica


def last_error(output: str) -> str:
    errors = [line for line in output.splitlines() if " ERROR: " in line]
    assert errors, output[-3000:]
    return errors[-1].split(" ERROR: ", 1)[1]


def stored_lookups(database_url: str) -> dict[str, str]:
    """SKU → outcome of every stored lookup."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return {
                sku: outcome for sku, outcome in conn.execute(select(Lookup.sku, Lookup.outcome))
            }
    finally:
        engine.dispose()


@pytest.mark.parametrize("command", [B, P, SC])
def test_a_browser_that_answers_its_version_but_cannot_launch_is_named_not_the_site(
    command: str, challenged_site: ReplicaProcess, tmp_path: Path
) -> None:
    """It passes the start-up check (``--version`` says Chromium) and fails at the home
    page's challenge: status 2 naming COLES_CHROMIUM_PATH, never ``site_changed``, and
    nothing stored or moved."""
    database = seeded(f"sqlite:///{tmp_path / 'crawl.sqlite3'}", tmp_path)
    work = work_folder(tmp_path)
    fake = shell_script(
        work / "bin" / "chromium",
        '[ "$1" = --version ] && echo "Chromium 156.0.8078.114" && exit 0\nexit 1',
    )
    before, counts = file_bytes(work), crawl_row_counts(database, ("crawl_runs",))
    case = CrawlCase("browser-cannot-launch", command, env={"COLES_CHROMIUM_PATH": str(fake)})
    run = run_crawl_case(case, challenged_site.url, work, database)
    assert run.returncode == 2, run.output[-3000:]
    assert "Traceback" not in run.output, run.output[-3000:]
    line = last_error(run.output)
    assert line.startswith(f"{BROWSER_UNAVAILABLE} {fake} did not start"), line
    assert "apt-get install chromium" in line, line
    assert "site_changed" not in run.output
    assert file_bytes(work) == before
    assert crawl_row_counts(database, ("crawl_runs",)) == counts


def test_a_browser_removed_mid_crawl_closes_it_with_status_2_and_leaves_the_rest_for_the_next_run(
    tmp_path: Path,
) -> None:
    """COLES_CHROMIUM_PATH is a working Chromium when the crawl starts, and the site sends
    no challenge yet. Mid-crawl the browser is removed and the challenge comes: the crawl
    closes with status 2 naming the browser; every stored outcome is a real answer (no
    ``failed``), the SKUs not looked up have none, and the next run, with the browser
    back, looks up exactly those."""
    require(Path(CHROMIUM).is_file(), f"Chromium not found at {CHROMIUM}")
    database = seeded(f"sqlite:///{tmp_path / 'crawl.sqlite3'}", tmp_path)
    work = work_folder(tmp_path)
    wanted = [str(p.sku) for p in list(CATALOGUE)[:30]]
    write_jsonl(work / "inbox" / "skus.jsonl", [{"sku": int(sku)} for sku in wanted])
    browser = work / "bin" / "chromium"
    wrapper = f'exec {CHROMIUM} "$@"'
    shell_script(browser, wrapper)
    one_at_a_time = ("-s", "COLES_GRAPHQL_BATCH=1", "-s", "CONCURRENT_REQUESTS=1")
    case = CrawlCase("browser-gone", B, one_at_a_time, env={"COLES_CHROMIUM_PATH": str(browser)})
    with ReplicaProcess(products=PRODUCTS, seed=1) as site:
        site.configure(delay_ms=150)
        command, env = crawl_case_command(case, site.url, work, database)
        with subprocess.Popen(
            command, cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        ) as crawl:
            deadline = time.monotonic() + 120
            while len(site.stats()["by_sku_kind"]["graphql"]) < 3:  # past the start
                assert crawl.poll() is None and time.monotonic() < deadline, "no lookups"
                time.sleep(0.05)
            browser.unlink()
            site.configure(challenge=True)
            output = crawl.communicate(timeout=120)[0].decode()
        answered = set(site.stats()["by_sku_kind"]["graphql"])
        assert crawl.returncode == 2, output[-3000:]
        assert "Traceback" not in output, output[-3000:]
        line = last_error(output)
        assert line.startswith(f"{BROWSER_UNAVAILABLE} {browser} did not start"), line
        stored = stored_lookups(database)
        assert "failed" not in stored.values(), stored
        assert set(stored) <= answered
        assert stored and len(stored) < len(wanted)

        shell_script(browser, wrapper)  # the browser is back: the next run does the rest
        site.reset_stats()
        again = run_crawl_case(case, site.url, work, database)
        assert again.returncode == 0, again.output[-3000:]
        asked = set(site.stats()["by_sku_kind"]["graphql"])
    assert set(stored_lookups(database)) == set(wanted)
    assert asked == set(wanted) - set(stored)
