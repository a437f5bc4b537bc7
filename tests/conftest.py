"""Shared fixtures: real databases (SQLite and a throwaway PostgreSQL database), inboxes,
and the shared frontier on a real Redis.

PostgreSQL tests need the server on 127.0.0.1:5432 (user postgres, trust auth, or
``COLES_TEST_POSTGRES_URL``); frontier tests need Redis on 127.0.0.1:6379 (or
``COLES_TEST_REDIS_URL``). Outside CI they are skipped when it is unreachable; with
``CI=true`` an unreachable server fails the run instead, so CI can never pass silently
without them.
"""

from __future__ import annotations

import os
import secrets
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
import redis
from sqlalchemy import text
from sqlalchemy.engine import make_url

from colesbarcodes.db.engine import make_engine, migrate
from colesbarcodes.db.models import Base
from colesbarcodes.frontier.stream import Frontier
from colesbarcodes.inbox.claims import Inbox
from tests.helpers import write_jsonl
from tests.proxies import forward_proxy, tinyproxy_path

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy.engine import Engine

    from tests.proxies import ForwardProxy

SAMPLES = Path(__file__).resolve().parent / "samples"
PROJECT = Path(__file__).resolve().parents[1]
EXAMPLES = PROJECT / "examples"
IN_CI = os.environ.get("CI", "").lower() == "true"
ADMIN_URL = os.environ.get(
    "COLES_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("COLES_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def require(condition: bool, reason: str) -> None:
    """Skip when a real dependency is missing — but fail under CI, where it must be present."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{reason} (required when CI=true)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """A throwaway PostgreSQL database for the whole test run (one per xdist worker),
    dropped at the end."""
    admin = make_url(ADMIN_URL)
    conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        conn = psycopg.connect(conninfo, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        require(False, f"PostgreSQL is not reachable at {admin.render_as_string()}: {exc}")
        raise
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")  # gw0, gw1, … under xdist
    name = f"colesbarcodes_test_{worker}_{uuid.uuid4().hex[:10]}"
    with conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # name is generated here, not input
    url = admin.set(drivername="postgresql+psycopg", database=name).render_as_string(
        hide_password=False
    )
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _truncate_postgres(url: str) -> None:
    engine = make_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every database test runs twice: on SQLite (the default) and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.sqlite3'}"
    url: str = request.getfixturevalue("postgres_server_url")
    _truncate_postgres(url)
    return url


@pytest.fixture
def postgres_url(postgres_server_url: str) -> str:
    """The test run's PostgreSQL database, emptied: for what only PostgreSQL can show."""
    _truncate_postgres(postgres_server_url)
    return postgres_server_url


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no schema at all (for migrations), on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite3'}"
        return
    server = make_url(request.getfixturevalue("postgres_server_url"))
    conninfo = server.set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False
    )
    name = f"{server.database}_empty"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # derived from the generated name
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def enrichment_inbox(tmp_path: Path) -> Path:
    """An empty barcode enrichment inbox for a crawl to read."""
    root = tmp_path / "barcode_enrichment_inbox"
    root.mkdir()
    return root


@pytest.fixture
def inbox(tmp_path: Path) -> Inbox:
    box = Inbox(tmp_path / "product_inbox")
    box.ensure()
    return box


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis the frontier tests use (each test under a key prefix of its own)."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        require(False, f"Redis is not reachable at {REDIS_URL}: {exc}")
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture
def frontier(redis_url: str) -> Iterator[Frontier]:
    """An empty frontier under a key prefix unique to the test, deleted afterwards."""
    shared = Frontier.from_url(redis_url, f"colesbarcodes-test:{uuid.uuid4().hex[:12]}")
    try:
        yield shared
    finally:
        shared.delete()
        shared.close()


@pytest.fixture
def samples() -> Path:
    require(SAMPLES.is_dir(), f"shared samples not found at {SAMPLES}")
    return SAMPLES


@pytest.fixture
def example_inbox(inbox: Inbox) -> Inbox:
    """The bundled sample inbox (real listing rows, canonical lines, bad lines)."""
    for path in sorted((EXAMPLES / "product_inbox").glob("*.jsonl")):
        shutil.copy2(path, inbox.root / path.name)
    return inbox


__all__ = ["IN_CI", "PROJECT", "require", "write_jsonl"]


def pytest_collection_modifyitems(config: Any, items: list[pytest.Item]) -> None:
    # The longest tests first, so that parallel workers do not end the run waiting on one
    # of them (a stable sort: the modules keep their order otherwise).
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
    for item in items:
        names = getattr(item, "fixturenames", ())
        if ("database_url" in names and "postgresql" in item.nodeid) or "postgres_url" in names:
            item.add_marker(pytest.mark.postgres)


# -- forward proxies (real tinyproxy instances) ---------------------------------------------


@pytest.fixture
def forward_proxies() -> Iterator[list[ForwardProxy]]:
    """Two running tinyproxies with their own credentials: exits 127.0.0.2 and 127.0.0.3.

    A server on 127.0.0.1 sees requests through the first as 127.0.0.2, through the second
    as 127.0.0.3 (real exits without the internet). Needs Debian's tinyproxy
    (``make system-packages``).
    """
    require(tinyproxy_path() is not None, "tinyproxy is not installed (make system-packages)")
    with (
        forward_proxy("127.0.0.2", "exit2", secrets.token_hex(12)) as first,
        forward_proxy("127.0.0.3", "exit3", secrets.token_hex(12)) as second,
    ):
        yield [first, second]


def pytest_itemcollected(item: pytest.Item) -> None:
    """Tests on the real forward proxies carry the ``proxy`` marker (``-m "not proxy"``)."""
    if "forward_proxies" in getattr(item, "fixturenames", ()):
        item.add_marker(pytest.mark.proxy)
