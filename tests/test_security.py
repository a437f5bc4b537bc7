"""Security: the database password never shows (logs, output, stats file, run ledgers),
robots.txt is obeyed by default, and the example scrapyd configuration listens on loopback
only, with authentication."""

from __future__ import annotations

import configparser
import json
import os
import subprocess
import sys
import uuid
from typing import TYPE_CHECKING

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import select, text
from sqlalchemy.engine import URL, make_url

from colesbarcodes import settings as crawl_settings
from colesbarcodes.db.engine import make_engine, migrate
from colesbarcodes.db.models import CrawlRun, ImportedFile, ImportRun
from colesbarcodes.replica.catalogue import Catalogue
from colesbarcodes.replica.process import ReplicaProcess
from tests.conftest import ADMIN_URL
from tests.helpers import PROJECT, crawl_command, crawl_env, lookups, run_crawl, write_jsonl

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

PRODUCTS = 60
SKUS = [product.sku for product in list(Catalogue.generate(PRODUCTS, seed=1))[:20]]


@pytest.fixture
def replica() -> Iterator[ReplicaProcess]:
    with ReplicaProcess(products=PRODUCTS, seed=1) as site:
        yield site


class Secret:
    """A database URL with a password, and what must never be seen of it."""

    def __init__(self, url: str, password: str, mark: str) -> None:
        self.url = url
        self.password = password
        self.mark = mark  # the password's own random part: in it whether quoted or not

    def assert_absent(self, text: str, where: str) -> None:
        assert self.mark not in text, f"the database password shows in {where}"
        assert self.password not in text, f"the database password shows in {where}"


@pytest.fixture
def database_with_password(postgres_server_url: str) -> Iterator[Secret]:
    """A throwaway database owned by a role of its own, with a password that holds
    characters a URL must quote. (A server that trusts local connections ignores the
    password; the URL holds it all the same, which is what must never be shown.)"""
    admin = make_url(ADMIN_URL)
    conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"colesbarcodes_secret_{uuid.uuid4().hex[:10]}"
    mark = uuid.uuid4().hex
    password = f"pw-{mark}-p@ss:w/rd%"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(name), sql.Literal(password)
            )
        )
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(name)
            )
        )
    url = URL.create(
        "postgresql+psycopg",
        username=name,
        password=password,
        host=admin.host,
        port=admin.port,
        database=name,
    ).render_as_string(hide_password=False)
    try:
        yield Secret(url, password, mark)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def table_text(url: str, *tables: type) -> str:
    """Every row of these tables, all columns, as one text."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = [
                {str(column): str(value) for column, value in row.items()}
                for table in tables
                for row in conn.execute(select(table)).mappings()
            ]
    finally:
        engine.dispose()
    return json.dumps(rows)


def loader(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loaders", *args],
        cwd=PROJECT,
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_database_password_never_shows_in_the_loaders_output_or_its_records(
    database_with_password: Secret, tmp_path: Path
) -> None:
    secret = database_with_password
    inbox = tmp_path / "product_inbox"
    inbox.mkdir()
    write_jsonl(
        inbox / "coles_store-0584.jsonl",
        [{"sku": 1, "name": "Milk", "price": 3.1}, {"sku": 2, "name": "Bread"}, "{bad line"],
    )

    imported = loader(
        secret.url, "-vv", "update", "--products", "--once", "--no-progress", "--inbox", str(inbox)
    )

    assert imported.returncode == 0, imported.stderr[-3000:]
    assert "1 files, 3 lines" in imported.stdout
    assert "INFO loaders.update: Imported coles_store-0584.jsonl" in imported.stderr
    secret.assert_absent(imported.stdout + imported.stderr, "the loader's output")
    for command in (["runs", "--imports", "--json"], ["data-quality", "--json"]):
        shown = loader(secret.url, *command)
        assert shown.returncode == 0, shown.stderr[-3000:]
        secret.assert_absent(shown.stdout + shown.stderr, f"`coles-loader {command[0]}`")
    records = table_text(secret.url, ImportRun, ImportedFile)
    assert "coles_store-0584.jsonl" in records
    secret.assert_absent(records, "import_runs or imported_files")

    missing = make_url(secret.url).set(database="no_such_database")
    failed = loader(
        missing.render_as_string(hide_password=False),
        "update",
        "--products",
        "--once",
        "--no-progress",
        "--inbox",
        str(inbox),
    )

    assert failed.returncode == 1
    assert f"cannot use the database {missing.render_as_string()}" in failed.stderr
    assert ":***@" in failed.stderr
    secret.assert_absent(failed.stdout + failed.stderr, "the loader's error")


def test_the_database_password_never_shows_in_a_crawls_log_stats_or_run_ledger(
    database_with_password: Secret, replica: ReplicaProcess, tmp_path: Path
) -> None:
    secret = database_with_password
    engine = make_engine(secret.url)
    migrate(engine)
    inbox = tmp_path / "barcode_enrichment_inbox"
    inbox.mkdir()
    write_jsonl(inbox / "skus.jsonl", [{"sku": sku} for sku in SKUS])
    stats_file = tmp_path / "stats.json"

    crawl = subprocess.run(
        crawl_command(inbox, replica.url),
        cwd=PROJECT,
        env=crawl_env(secret.url, stats_file, COLES_LOG_LEVEL="DEBUG"),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    log = crawl.stdout + crawl.stderr
    assert crawl.returncode == 0, log[-3000:]
    assert "[scrapy.core.engine] DEBUG: Crawled (200)" in log
    assert len(lookups(engine)) == len(SKUS)  # the crawl did use the database
    secret.assert_absent(log, "the crawl's log")
    stats = stats_file.read_text()
    assert json.loads(stats)["finish_reason"] == "finished"
    secret.assert_absent(stats, "the stats file")
    ledger = table_text(secret.url, CrawlRun)
    assert '"finish_reason": "finished"' in ledger
    secret.assert_absent(ledger, "crawl_runs")
    with engine.connect() as conn:  # and nowhere else in the database either
        dumped = conn.execute(text("SELECT string_agg(t::text, '') FROM lookups t")).scalar()
    secret.assert_absent(str(dumped), "the lookups")
    engine.dispose()


# --- robots.txt ------------------------------------------------------------------------


def test_crawls_obey_robots_txt_unless_told_otherwise() -> None:
    assert crawl_settings.ROBOTSTXT_OBEY is True


def test_a_crawl_never_requests_what_robots_txt_disallows(
    replica: ReplicaProcess, tmp_path: Path
) -> None:
    replica.configure(robots_disallow=["/api/graphql"])

    def crawl(name: str, *args: str) -> tuple[int, dict[str, object], list[str]]:
        url = f"sqlite:///{tmp_path / name}.sqlite3"
        engine = make_engine(url)
        migrate(engine)
        inbox = tmp_path / name
        inbox.mkdir()
        write_jsonl(inbox / "skus.jsonl", [{"sku": sku} for sku in SKUS])
        replica.reset_stats()
        result = run_crawl(url, inbox, replica.url, *args)
        outcomes = sorted({outcome for _, outcome, _ in lookups(engine)})
        engine.dispose()
        return result.returncode, result.stats, outcomes

    status, stats, outcomes = crawl("obeying")

    requests = replica.stats()["by_kind"]
    assert requests["robots"] == 1  # robots.txt was read first
    assert requests["graphql"] == 0  # and not one API request was sent
    forbidden = stats["robotstxt/forbidden"]
    assert isinstance(forbidden, int) and 1 <= forbidden <= len(SKUS)  # batched documents
    assert outcomes == ["failed"]  # kept for a retry file, and flagged by the monitors
    assert status == 3
    assert str(stats["finish_reason"]).startswith("monitor_failed: failed share 1.00")

    status, stats, outcomes = crawl("ignoring", "-s", "ROBOTSTXT_OBEY=False")

    assert replica.stats()["graphql_products"] == len(SKUS)  # the API is what was held back
    assert "robotstxt/forbidden" not in stats
    assert "failed" not in outcomes


# --- scrapyd -----------------------------------------------------------------------------


def test_scrapyd_started_in_the_project_with_the_example_config_listens_on_loopback_with_auth(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As scrapyd reads it: its defaults, then the example installed as ~/.scrapyd.conf,
    then the project's scrapy.cfg (eggless mode), which must not undo either."""
    config_module = pytest.importorskip("scrapyd.config")
    example = PROJECT / "examples" / "scrapyd.conf"
    parsed = configparser.ConfigParser()
    parsed.read(example)
    assert parsed["scrapyd"]["bind_address"] == "127.0.0.1"
    assert parsed["scrapyd"]["username"]
    assert parsed["scrapyd"]["password"]
    home = tmp_path / "home"
    home.mkdir()
    (home / ".scrapyd.conf").write_text(example.read_text())
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(PROJECT)

    config = config_module.Config()

    assert config.get("bind_address") == "127.0.0.1"
    assert config.get("username") == parsed["scrapyd"]["username"]
    assert config.get("password") == parsed["scrapyd"]["password"]
