"""Bad configuration: every ``coles-loader`` command with wrong option, argument and
environment values, run as a real process.

A typo in a path, a MySQL URL from the old system or an unreachable server must end in one
line that says what is wrong and what to do, with a documented exit status (1 runtime
error, 2 usage error), never a traceback, and with nothing written or lost: the inbox
files keep their bytes and place, no archive, quarantine or database file appears, and
the database's rows stay as they were. Each case is a row of :data:`CASES`; the cases that
reach a database run on SQLite and on PostgreSQL. The table is in docs/reliability.md.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import func, inspect, select

from colesbarcodes.db.engine import make_engine
from colesbarcodes.db.models import Base
from tests.conftest import require
from tests.helpers import PROJECT, canonical_rows, free_port, run_loader, write_jsonl

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

# Placeholders in a case's arguments and environment, replaced in its workspace.
MISSING = "<MISSING>"  # a path that does not exist
FILE = "<FILE>"  # a product file (where a folder is expected)
FOLDER = "<FOLDER>"  # an empty folder (where a file is expected)
CLOSED = "<CLOSED>"  # a local port nothing listens on
SECRET = "s3cret"  # noqa: S105 - a test value that must never be printed


@dataclass(frozen=True)
class Case:
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


def case(
    id: str,
    command: str | tuple[str, ...],
    status: int,
    phrase: str,
    *,
    env: Mapping[str, str] | None = None,
    database: bool = False,
    unreadable: str | None = None,
    postgres: bool = False,
) -> Case:
    args = tuple(command.split()) if isinstance(command, str) else command
    return Case(id, args, status, phrase, dict(env or {}), database, unreadable, postgres)


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
    "queue-missing-barcodes": "queue-missing-barcodes",
}
UNSUPPORTED = "the mysql scheme is not supported (MySQL and MariaDB are not); use sqlite:///PATH or postgresql://USER@HOST/DB"

CASES: list[Case] = [
    # --- DATABASE_URL / --database-url, on every command that opens the database --------
    *[
        case(f"{name}-DATABASE_URL-mysql", command, 1, UNSUPPORTED, env={"DATABASE_URL": MYSQL})
        for name, command in DATABASE_COMMANDS.items()
    ],
    case(
        "DATABASE_URL-mariadb-with-password",
        "data-quality",
        1,
        "mariadb://coles:***@127.0.0.1:3306/coles: the mariadb scheme is not supported",
        env={"DATABASE_URL": f"mariadb://coles:{SECRET}@127.0.0.1:3306/coles"},
    ),
    case(
        "DATABASE_URL-malformed-postgres",
        "data-quality",
        1,
        "postgres:/bad: not a database URL; use sqlite:///PATH",
        env={"DATABASE_URL": "postgres:/bad"},
    ),
    case(
        "database-url-option-nonsense",
        "--database-url nonsense migrate",
        1,
        "cannot use the database nonsense: not a database URL",
    ),
    case(
        "database-url-option-empty",
        ("--database-url", "", "data-quality"),
        2,
        "'--database-url': is empty",
    ),
    case(
        "DATABASE_URL-port-not-a-number",
        "runs",
        1,
        "postgresql://postgres:***@127.0.0.1:abc/coles: its port is not a number",
        env={"DATABASE_URL": f"postgresql://postgres:{SECRET}@127.0.0.1:abc/coles"},
    ),
    case(
        "DATABASE_URL-psycopg2-driver",
        "data-quality",
        1,
        "the psycopg2 driver is not supported (drop +psycopg2 from the scheme)",
        env={"DATABASE_URL": "postgresql+psycopg2://postgres@127.0.0.1/coles"},
    ),
    case(
        "DATABASE_URL-sqlite-folder-missing",
        "update --products --once --no-progress",
        1,
        "the folder nonexistent-dir does not exist; create it, or give another path",
        env={"DATABASE_URL": "sqlite:///nonexistent-dir/x.db"},
    ),
    case(
        "DATABASE_URL-sqlite-path-is-a-folder",
        "data-quality",
        1,
        "is a folder; name a database file inside it",
        env={"DATABASE_URL": f"sqlite:///{FOLDER}"},
    ),
    case(
        "DATABASE_URL-sqlite-file-not-a-database",
        "data-quality",
        1,
        "is not an SQLite database",
        env={"DATABASE_URL": f"sqlite:///{FILE}"},
    ),
    case(
        "DATABASE_URL-postgres-closed-port",
        "update --products --once --no-progress",
        1,
        "Connection refused (check --database-url or DATABASE_URL, and that the database "
        "server is running)",
        env={"DATABASE_URL": f"postgresql://postgres:{SECRET}@127.0.0.1:{CLOSED}/coles"},
    ),
    case(
        "DATABASE_URL-postgres-unknown-host",
        "data-quality",
        1,
        "failed to resolve host 'no-such-host.invalid'",
        env={"DATABASE_URL": "postgresql://postgres@no-such-host.invalid/coles"},
    ),
    case(
        "DATABASE_URL-postgres-port-of-another-server",
        "data-quality",
        1,
        "postgres@127.0.0.1:6379/coles?connect_timeout=2: connection timeout expired",
        env={"DATABASE_URL": "postgresql://postgres@127.0.0.1:6379/coles?connect_timeout=2"},
    ),
    case(
        "DATABASE_URL-postgres-no-such-database",
        "data-quality",
        1,
        'database "no_such_database_x" does not exist',
        env={"DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/no_such_database_x"},
        postgres=True,
    ),
    # --- update -------------------------------------------------------------------------
    case(
        "update-inbox-missing",
        f"update --products --once --no-progress --inbox {MISSING}",
        2,
        "does not exist: create it, or give the right one (--inbox or env COLES_PRODUCT_INBOX)",
        database=True,
    ),
    case(
        "update-COLES_PRODUCT_INBOX-missing",
        "update --products --once --no-progress",
        2,
        "does not exist: create it",
        env={"COLES_PRODUCT_INBOX": MISSING},
        database=True,
    ),
    case(
        "update-inbox-is-a-file",
        f"update --products --once --no-progress --inbox {FILE}",
        2,
        "is a file, not a folder: give the inbox folder",
        database=True,
    ),
    case(
        "update-inbox-unreadable",
        f"update --products --once --no-progress --inbox {FOLDER}",
        2,
        "cannot be read and written by this user",
        database=True,
        unreadable=FOLDER,
    ),
    case(
        "update-batch-size-zero",
        "update --products --once --batch-size 0",
        2,
        "0 is not in the range x>=1",
        database=True,
    ),
    case(
        "update-batch-size-negative",
        "update --products --once --batch-size -5",
        2,
        "-5 is not in the range x>=1",
        database=True,
    ),
    case(
        "update-batch-size-not-a-number",
        "update --products --once --batch-size lots",
        2,
        "'lots' is not a valid integer",
        database=True,
    ),
    case(
        "update-pause-negative",
        "update --products --pause -1",
        2,
        "-1.0 is not in the range x>=0",
        database=True,
    ),
    case(
        "update-max-failures-zero",
        "update --products --max-failures 0",
        2,
        "0 is not in the range x>=1",
        database=True,
    ),
    case(
        "update-once-and-watch",
        "update --products --once --watch",
        2,
        "--once and --watch exclude each other",
        database=True,
    ),
    case(
        "update-nothing-to-do",
        "update --once",
        2,
        "nothing to update: pass --products (or --post-process-only)",
        database=True,
    ),
    case(
        "update-unknown-option",
        "update --products --inbx x",
        2,
        "No such option '--inbx'. Did you mean '--inbox'?",
        database=True,
    ),
    # --- report, runs --------------------------------------------------------------------
    case("report-out-is-a-folder", f"report --out {FOLDER}", 2, "is a directory", database=True),
    case(
        "report-out-under-a-file",
        f"report --out {FILE}/report.html",
        1,
        "products-store-0584.jsonl is a file, not a folder; choose another --out",
        database=True,
    ),
    case("report-runs-zero", "report --runs 0", 2, "0 is not in the range x>=1", database=True),
    case("report-rows-negative", "report --rows -1", 2, "-1 is not in the range", database=True),
    case("runs-limit-zero", "runs --limit 0", 2, "0 is not in the range x>=1", database=True),
    # --- the diagnostics -----------------------------------------------------------------
    case(
        "inspect-product-not-a-number",
        "inspect-product abc",
        2,
        "'abc' is not a valid integer",
        database=True,
    ),
    case(
        "inspect-product-zero",
        "inspect-product 0",
        2,
        "0 is not in the range x>=1",
        database=True,
    ),
    case(
        "inspect-product-unknown",
        "inspect-product 999999",
        1,
        "no product 999999 in the database (find-sku gives a SKU's product id)",
        database=True,
    ),
    case(
        "find-sku-not-a-number",
        "find-sku abc",
        2,
        "coles sku 'abc' is not a positive integer",
        database=True,
    ),
    case(
        "find-sku-negative",
        ("find-sku", "--", "-5"),
        2,
        "coles sku '-5' is not a positive integer",
        database=True,
    ),
    case(
        "find-sku-unknown",
        "find-sku 999999",
        1,
        "coles SKU 999999 is not in the database",
        database=True,
    ),
    case(
        "analyze-store-unknown",
        "analyze-store 9999",
        1,
        "no store '9999' of coles in the database (coles-loader data-quality lists the stores",
        database=True,
    ),
    case(
        "analyze-store-empty",
        ("analyze-store", ""),
        2,
        "Invalid value for STORE_ID: empty store id",
        database=True,
    ),
    case(
        "analyze-store-unknown-company",
        "analyze-store 0584 --company colse",
        1,
        "no store '0584' of colse in the database",
        database=True,
    ),
    case(
        "compare-store-skus-unknown-store",
        f"compare-store-skus 9999 {FILE}",
        1,
        "no store '9999' of coles in the database",
        database=True,
    ),
    case(
        "compare-store-skus-file-missing",
        f"compare-store-skus 0584 {MISSING}",
        2,
        "does not exist",
        database=True,
    ),
    case(
        "compare-store-skus-file-is-a-folder",
        f"compare-store-skus 0584 {FOLDER}",
        2,
        "is a directory",
        database=True,
    ),
    case(
        "queue-missing-barcodes-inbox-missing",
        f"queue-missing-barcodes --inbox {MISSING}",
        2,
        "does not exist: create it, or give the right one (--inbox or env COLES_ENRICHMENT_INBOX)",
        database=True,
    ),
    case(
        "queue-missing-barcodes-COLES_ENRICHMENT_INBOX-missing",
        "queue-missing-barcodes",
        2,
        "does not exist: create it",
        env={"COLES_ENRICHMENT_INBOX": MISSING},
        database=True,
    ),
    case(
        "queue-missing-barcodes-inbox-is-a-file",
        f"queue-missing-barcodes --inbox {FILE}",
        2,
        "is a file, not a folder",
        database=True,
    ),
    case(
        "queue-missing-barcodes-limit-zero",
        "queue-missing-barcodes --limit 0",
        2,
        "0 is not in the range x>=1",
        database=True,
    ),
    case(
        "queue-missing-barcodes-unknown-store",
        "queue-missing-barcodes --store 9999",
        1,
        "no store '9999' of coles in the database",
        database=True,
    ),
    case(
        "queue-missing-barcodes-empty-store",
        ("queue-missing-barcodes", "--store", ""),
        2,
        "Invalid value for '--store': empty store id",
        database=True,
    ),
    # --- analyze-jsonl (no database) ------------------------------------------------------
    case("analyze-jsonl-missing", f"analyze-jsonl {MISSING}", 2, "does not exist"),
    case("analyze-jsonl-folder", f"analyze-jsonl {FOLDER}", 2, "is a directory"),
    case(
        "analyze-jsonl-unreadable",
        f"analyze-jsonl {FILE}",
        2,
        "is not readable",
        unreadable=FILE,
    ),
    # --- frontier ------------------------------------------------------------------------
    case("frontier-feed-no-redis", "frontier feed", 2, "Missing option '--redis'"),
    case(
        "frontier-feed-redis-not-a-url",
        "frontier feed --redis nonsense",
        2,
        "nonsense: not a Redis URL; use redis://[:PASSWORD@]HOST:6379/0",
    ),
    case(
        "frontier-feed-redis-http",
        "frontier feed --redis http://127.0.0.1:6379/0",
        2,
        "not a Redis URL",
    ),
    case(
        "frontier-feed-COLES_FRONTIER_URL-bad-port",
        "frontier feed",
        2,
        "redis://:***@127.0.0.1:abc/0: its port is not a number from 0 to 65535",
        env={"COLES_FRONTIER_URL": f"redis://:{SECRET}@127.0.0.1:abc/0"},
    ),
    case(
        "frontier-feed-redis-database-not-a-number",
        "frontier feed --redis redis://127.0.0.1:6379/frontier",
        2,
        "the database number 'frontier' is not a whole number",
    ),
    case(
        "frontier-feed-redis-closed-port",
        f"frontier feed --redis redis://:{SECRET}@127.0.0.1:{CLOSED}/0",
        1,
        "Connection refused. (is Redis running there? Check --redis or COLES_FRONTIER_URL)",
    ),
    case(
        "frontier-feed-redis-is-postgresql",
        "frontier feed --redis redis://127.0.0.1:5432/0",
        1,
        "cannot use the frontier at redis://127.0.0.1:5432/0",
    ),
    case(
        "frontier-feed-inbox-missing",
        f"frontier feed --redis redis://127.0.0.1:{CLOSED}/0 --inbox {MISSING}",
        2,
        "does not exist: create it, or give the right one (--inbox or env COLES_ENRICHMENT_INBOX)",
    ),
    case(
        "frontier-feed-COLES_ENRICHMENT_INBOX-is-a-file",
        f"frontier feed --redis redis://127.0.0.1:{CLOSED}/0",
        2,
        "is a file, not a folder",
        env={"COLES_ENRICHMENT_INBOX": FILE},
    ),
    case(
        "frontier-feed-key-empty",
        ("frontier", "feed", "--redis", "redis://127.0.0.1:6379/0", "--key", ""),
        2,
        "'--key': is empty",
    ),
    case(
        "frontier-status-COLES_FRONTIER_KEY-empty-option",
        ("frontier", "status", "--redis", f"redis://127.0.0.1:{CLOSED}/0", "--key", " "),
        2,
        "is empty",
    ),
    case(
        "frontier-status-redis-closed-port",
        f"frontier status --redis redis://127.0.0.1:{CLOSED}/0",
        1,
        "Connection refused",
    ),
    case(
        "frontier-status-COLES_FRONTIER_URL-not-a-url",
        "frontier status",
        2,
        "not a Redis URL",
        env={"COLES_FRONTIER_URL": "127.0.0.1:6379"},
    ),
    case("frontier-unknown-command", "frontier drain", 2, "No such command 'drain'"),
    # --- schedule and jobs ---------------------------------------------------------------
    case("schedule-node-ftp", "schedule --node ftp://x", 2, "not a scrapyd URL: ftp://x"),
    case(
        "schedule-SCRAPYD_URL-second-node-bad",
        "schedule",
        2,
        "not a scrapyd URL: ftp://y",
        env={"SCRAPYD_URL": f"http://127.0.0.1:{CLOSED} ftp://y"},
    ),
    case(
        "schedule-node-bad-port",
        f"schedule --node http://crawler:{SECRET}@127.0.0.1:99999",
        2,
        "bad port in http://127.0.0.1:99999",
    ),
    case(
        "schedule-node-unreachable",
        f"schedule --node http://crawler:{SECRET}@127.0.0.1:{CLOSED}",
        1,
        "unreachable (connection refused): is scrapyd running there? Check --node or SCRAPYD_URL",
    ),
    case("schedule-every-words", "schedule --every soon", 2, "is not an interval like 30m"),
    case("schedule-every-zero", "schedule --every 0m", 2, "must be longer than 0"),
    case("schedule-every-negative", "schedule --every -5m", 2, "'-5m' is not an interval"),
    case(
        "schedule-every-too-long",
        "schedule --every 99999999999d",
        2,
        "is longer than 366d: use --cron for rarer submissions",
    ),
    case("schedule-every-empty", ("schedule", "--every", ""), 2, "'--every': is empty"),
    case(
        "schedule-cron-out-of-range",
        ("schedule", "--cron", "61 * * * *"),
        2,
        "'61 * * * *' is not a cron expression like '*/30 * * * *'",
    ),
    case(
        "schedule-cron-never",
        ("schedule", "--cron", "0 0 30 2 *"),
        2,
        "'0 0 30 2 *' never comes: check its day and month",
    ),
    case("schedule-cron-empty", ("schedule", "--cron", ""), 2, "'--cron': is empty"),
    case("schedule-once-and-every", "schedule --once --every 5m", 2, "--once excludes --every"),
    case("schedule-max-runs-zero", "schedule --every 1m --max-runs 0", 2, "0 is not in the range"),
    case(
        "schedule-max-failures-zero",
        "schedule --every 1m --max-failures 0",
        2,
        "0 is not in the range",
    ),
    case("schedule-setting-no-value", "schedule -s DOWNLOAD_DELAY", 2, "is not NAME=VALUE"),
    case("schedule-argument-no-name", "schedule -a =0584", 2, "'=0584' is not NAME=VALUE"),
    case("schedule-spider-empty", ("schedule", "--spider", ""), 2, "'--spider': is empty"),
    case("schedule-project-empty", ("schedule", "--project", ""), 2, "'--project': is empty"),
    case(
        "schedule-egg-version-empty",
        ("schedule", "--egg-version", ""),
        2,
        "'--egg-version': is empty",
    ),
    case("jobs-finished-negative", "jobs --finished -1", 2, "-1 is not in the range x>=0"),
    case("jobs-node-bad-scheme", "jobs --node nonsense://x", 2, "not a scrapyd URL"),
    case(
        "jobs-SCRAPYD_URL-unreachable",
        "jobs",
        1,
        "unreachable (connection refused): is scrapyd running there?",
        env={"SCRAPYD_URL": f"http://127.0.0.1:{CLOSED}"},
    ),
    case("jobs-project-empty", ("jobs", "--project", ""), 2, "'--project': is empty"),
    # --- replica -------------------------------------------------------------------------
    case(
        "replica-products-negative",
        "replica --products -1",
        2,
        "argument --products: -1 is out of range: give at least 0",
    ),
    case(
        "replica-port-out-of-range",
        "replica --port 99999",
        2,
        "99999 is out of range: give from 0 to 65535",
    ),
    case("replica-port-not-a-number", "replica --port web", 2, "'web' is not a whole number"),
    case(
        "replica-catalogue-missing",
        f"replica --catalogue {MISSING}",
        2,
        "No such file or directory",
    ),
    case("replica-catalogue-folder", f"replica --catalogue {FOLDER}", 2, "Is a directory"),
    case("replica-config-not-json", ("replica", "--config", "{bad"), 2, "error: Expecting"),
    case("replica-error-share", "replica --error-share 2", 2, "error_share: out of range"),
    case("replica-api-key", "replica --api-key xyz", 2, "32 lowercase hexadecimal characters"),
    case(
        "replica-export-into-a-folder",
        f"replica --products 5 --export {FOLDER}",
        1,
        "replica: cannot write",
    ),
    # --- the command line itself ---------------------------------------------------------
    case("unknown-command", "imprt", 2, "No such command 'imprt'"),
]


def _ids(cases: list[Case]) -> list[pytest.ParameterSet]:
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
            .replace(CLOSED, str(self.closed_port))
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


def tree(root: Path) -> dict[str, str]:
    """Every path under ``root`` with a digest of its bytes ("dir" for folders)."""
    return {
        str(path.relative_to(root)): "dir"
        if path.is_dir()
        else hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
    }


def row_counts(url: str) -> dict[str, int]:
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


def run_case(
    bad: Case, space: Workspace, database_url: str, prefix: Sequence[str] = ()
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


def check(bad: Case, space: Workspace, database_url: str) -> None:
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
    before = tree(space.root)
    try:
        proc = run_case(bad, space, database_url, prefix)
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
    assert tree(space.root) == before  # no file moved, changed or created


@pytest.mark.parametrize("bad", _ids([c for c in CASES if not c.database]))
def test_a_bad_value_is_one_line_with_its_exit_status_and_changes_nothing(
    bad: Case, workspace: Workspace, request: pytest.FixtureRequest
) -> None:
    """Cases before any database is opened, or whose database URL is the bad value: the
    default URL points into the workspace, so a database file made by mistake shows."""
    if bad.postgres:
        request.getfixturevalue("postgres_server_url")  # PostgreSQL must be there to say so
    check(bad, workspace, f"sqlite:///{workspace.root / 'unused.sqlite3'}")


@pytest.mark.parametrize("bad", _ids([c for c in CASES if c.database]))
def test_a_bad_value_on_a_database_is_one_line_and_changes_no_row(
    bad: Case, workspace: Workspace, database_url: str, tmp_path: Path
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
    counts = row_counts(database_url)
    assert counts["products"] == 8
    check(bad, workspace, database_url)
    assert row_counts(database_url) == counts


def test_every_command_has_a_case() -> None:
    """A new command (or one dropped from the table) shows here."""
    from loaders.cli import cli

    commands = [
        f"{name} {sub}" if sub else name
        for name, command in cli.commands.items()
        for sub in (getattr(command, "commands", None) or [""])
    ]

    def command_line(bad: Case) -> str:
        words = list(bad.args[2:] if bad.args[:1] == ("--database-url",) else bad.args)
        return " ".join(words) + " "

    lines = [command_line(bad) for bad in CASES]
    assert [c for c in commands if not any(line.startswith(f"{c} ") for line in lines)] == []
