"""Engines, sessions and migrations: how the rest of the project reaches the database.

``DATABASE_URL`` (or an explicit URL) chooses the database; the default is an SQLite file
under ``var/``. ``postgresql://`` URLs use psycopg 3. The schema is brought up to date
with Alembic, under a lock, so several processes starting at once migrate it once.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from importlib.resources.abc import Traversable

__all__ = [
    "DATABASE_ERRORS",
    "DEFAULT_DATABASE_URL",
    "SUPPORTED_URLS",
    "DatabaseUrlError",
    "check_database_url",
    "database_url",
    "make_engine",
    "migrate",
    "redact",
    "session_factory",
    "transient",
    "unreachable",
    "with_retries",
]

DEFAULT_DATABASE_URL = "sqlite:///var/colesbarcodes.sqlite3"
# What a failed database call can raise: SQLAlchemy's wrapper, or psycopg's own error from
# the COPY protocol, which runs on the driver's cursor directly.
DATABASE_ERRORS: tuple[type[Exception], ...] = (DBAPIError, psycopg.Error)
MIGRATIONS = Path(__file__).with_name("migrations")
# The newest migration's revision: a database already there is not handed to Alembic at all
# (loading it and its scripts is most of a short command's start). A test keeps this in step
# with the scripts.
SCHEMA_REVISION = "0007"
logger = logging.getLogger(__name__)
_MIGRATION_LOCK_ID = 0x636F6C6573  # "coles", for pg_advisory_lock


def database_url(explicit: str | None = None) -> str:
    """The URL to use: an explicit one, else ``DATABASE_URL``, else the SQLite default."""
    return explicit or os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL


def redact(url: str | URL) -> str:
    """A URL fit for logs and messages: the password is never shown, even in a URL that
    does not parse."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return _PASSWORD.sub(r"\1***@", str(url))


# The password of ``scheme://user:password@host``, for URLs SQLAlchemy cannot parse.
_PASSWORD = re.compile(r"^([^:/?#]*://[^:@/?#]*:)[^@/?#]*@")
SUPPORTED_URLS = "sqlite:///PATH or postgresql://USER@HOST/DB"
# Scheme (dialect[+driver]) → the driver used; what the project installs and tests.
_SCHEMES = {
    "sqlite": "sqlite",
    "sqlite+pysqlite": "sqlite",
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
}


class DatabaseUrlError(ValueError):
    """A database URL that cannot be used, found before connecting. ``str()`` is one line:
    the URL (password masked), what is wrong and what to use instead."""

    def __init__(self, url: str | URL, reason: str) -> None:
        self.url = redact(url)
        self.reason = reason
        super().__init__(f"{self.url}: {reason}")


def check_database_url(url: str | URL) -> URL:
    """``url`` parsed, on a database the project supports (SQLite through the standard
    library, PostgreSQL through psycopg 3), or :class:`DatabaseUrlError`.

    Every engine is made through this check, the crawls' included: a MySQL or MariaDB URL
    (what users of the old system try first) would otherwise end in SQLAlchemy's
    ``No module named 'MySQLdb'``. An SQLite file's folder must exist (only the default
    database's ``var/`` is created), so a typo in a path is an error, not a new database.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseUrlError(url, f"not a database URL; use {SUPPORTED_URLS}") from None
    except ValueError:  # SQLAlchemy's int() of the port
        raise DatabaseUrlError(
            url, "its port is not a number; give HOST:PORT, e.g. :5432"
        ) from None
    scheme = parsed.drivername
    if scheme not in _SCHEMES:
        dialect, _, driver = scheme.partition("+")
        if dialect in ("sqlite", "postgresql", "postgres"):
            reason = f"the {driver} driver is not supported (drop +{driver} from the scheme)"
        else:
            reason = f"the {scheme} scheme is not supported"
            if dialect in ("mysql", "mariadb"):
                reason += " (MySQL and MariaDB are not)"
        raise DatabaseUrlError(url, f"{reason}; use {SUPPORTED_URLS}")
    parsed = parsed.set(drivername=_SCHEMES[scheme])
    if parsed.drivername == "sqlite" and parsed.database and parsed.database != ":memory:":
        _check_sqlite_path(url, Path(parsed.database))
    return parsed


def _not_sqlite(path: Path) -> bool:
    """Whether ``path`` holds something other than an SQLite database, as SQLite reads it.

    Never read the file with ``open()``: SQLite's locks on it are POSIX locks, which
    belong to the process, and closing any descriptor of the file drops them all. A
    process with a connection open (a crawl's pipeline, when its prefill or run ledger
    makes an engine) would go on unlocked without SQLite knowing; the last connection of
    another process to close would then checkpoint and delete the WAL under it, and
    every commit after that would go to the deleted file. SQLite's own opens share its
    record of the locks held and keep such a descriptor open until they are released.
    """
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            connection.execute("PRAGMA schema_version")
        finally:
            connection.close()
    except sqlite3.Error as exc:
        # not there yet (SQLite creates it), or not readable (SQLite says so when used)
        return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_NOTADB
    return False


def _check_sqlite_path(url: str | URL, path: Path) -> None:
    if path.is_dir():
        raise DatabaseUrlError(url, f"{path} is a folder; name a database file inside it")
    if _not_sqlite(path):
        raise DatabaseUrlError(
            url, f"{path} is not an SQLite database; name a new file or an existing database"
        )
    folder = path.parent
    if folder.is_dir():
        return
    if folder.exists():
        raise DatabaseUrlError(url, f"{folder} is not a folder; give another path")
    if path == Path(make_url(DEFAULT_DATABASE_URL).database or ""):
        return  # the default: its folder is made by make_engine
    raise DatabaseUrlError(
        url, f"the folder {folder} does not exist; create it, or give another path"
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=60000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str | URL | None = None, **kwargs: Any) -> Engine:
    """An engine for ``url`` (see :func:`database_url`), with SQLite tuned for concurrency;
    :class:`DatabaseUrlError` for a URL :func:`check_database_url` refuses."""
    parsed = check_database_url(database_url(url) if not isinstance(url, URL) else url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    connect_args = kwargs.setdefault("connect_args", {})
    if "connect_timeout" not in parsed.query:  # an unreachable server fails, not hangs
        connect_args.setdefault("connect_timeout", 10)
    # No server-side prepared statements: psycopg prepares a query on its fifth run, and
    # PostgreSQL then settles on a generic plan costed from the statistics of that moment.
    # An import prepares its look-ups while the tables are empty; the generic plan (a scan
    # per key) stays in use as they grow to millions of rows: 25 times slower by 200,000
    # lines. Unprepared, every statement is planned with its own values and the current
    # table sizes (docs/product-update.md, "Plan stability").
    connect_args.setdefault("prepare_threshold", None)
    return create_engine(parsed, **kwargs)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


T = TypeVar("T")


# Errors that another attempt can get past: serialization failures, deadlocks, a lock not
# available, a concurrent writer's unique key, the server shutting a connection down.
_TRANSIENT_SQLSTATES = frozenset(
    {"40001", "40P01", "55P03", "23505", "57P01", "57P02", "57P03", "08000", "08003", "08006"}
)


def transient(exc: BaseException) -> bool:
    """Whether the failed work may succeed when run again (unlike, say, a value too long
    for its column, which fails the same way every time)."""
    if isinstance(exc, OperationalError | InterfaceError):
        return True  # the connection was lost or refused, the database was locked
    orig = getattr(exc, "orig", exc)
    if isinstance(orig, psycopg.OperationalError | psycopg.InterfaceError):
        return True
    if getattr(orig, "sqlstate", None) in _TRANSIENT_SQLSTATES:
        return True
    text = str(orig)
    return "UNIQUE constraint failed" in text or "database is locked" in text  # SQLite


def error_detail(exc: BaseException) -> str:
    """What went wrong, in one line: the first line of the driver's message (not
    SQLAlchemy's wrapping of it, with its SQL and links), or the error's type when it has
    no message."""
    text = str(getattr(exc, "orig", exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def unreachable(exc: BaseException) -> bool:
    """The server refuses, is not there or has no such database: asking again at once
    will not help (unlike a connection cut or a deadlock, which a retry gets past)."""
    text = str(getattr(exc, "orig", exc)).lower()
    signs = (
        "connection refused",
        "could not translate host",
        "failed to resolve host",
        "does not exist",
        "timeout",
        "password authentication failed",
        "invalid response to ssl negotiation",  # not a PostgreSQL server on that port
    )
    return any(sign in text for sign in signs) or "unable to open database" in text


def _retrying(
    call: Callable[[], T], *, attempts: int, what: str, give_up: Callable[[BaseException], bool]
) -> T:
    """``call()``, run again after a database error unless ``give_up(error)`` says that
    another attempt cannot help, with a growing pause and a warning each time."""
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except DATABASE_ERRORS as exc:
            if attempt == attempts or give_up(exc):
                raise
            delay = min(0.2 * 2**attempt, 5.0)
            logger.warning(
                "%s failed (%s), retrying in %.1fs (attempt %d/%d)",
                what,
                type(getattr(exc, "orig", exc)).__name__,
                delay,
                attempt,
                attempts,
            )
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def with_retries(
    engine: Engine,
    work: Callable[[Session], T],
    *,
    attempts: int = 5,
    what: str = "A transaction",
) -> T:
    """``work`` in a transaction of its own, run again (from the start, in a new
    transaction) after a :func:`transient` database error: a dropped or terminated
    connection, a deadlock, a serialization failure, a concurrent writer. Other errors are
    raised at once. ``work`` must be safe to repeat."""
    factory = session_factory(engine)

    def attempt() -> T:
        with factory.begin() as session:
            return work(session)

    return _retrying(attempt, attempts=attempts, what=what, give_up=lambda e: not transient(e))


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _MIGRATION_LOCK_ID})
                conn.commit()
    elif engine.url.database and engine.url.database != ":memory:":
        lock_path = Path(engine.url.database + ".migrate.lock")
        with lock_path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield
    else:
        yield


@contextlib.contextmanager
def _migrations_folder() -> Iterator[Path]:
    """The migrations as a real folder, which Alembic needs.

    Installed normally (or run from the project folder) they are one already. Deployed to
    scrapyd as an egg, the package is a zip file: the scripts are copied out to a
    temporary folder for the time of the migration.
    """
    if MIGRATIONS.is_dir():
        yield MIGRATIONS
        return
    from importlib.resources import files

    def copy(source: Traversable, target: Path) -> None:
        target.mkdir(exist_ok=True)
        for child in source.iterdir():
            if child.is_dir():
                if child.name != "__pycache__":
                    copy(child, target / child.name)
            elif child.name.endswith((".py", ".mako")):
                (target / child.name).write_bytes(child.read_bytes())

    with tempfile.TemporaryDirectory(prefix="colesbarcodes-migrations-") as temp:
        target = Path(temp) / "migrations"
        copy(files("colesbarcodes.db").joinpath("migrations"), target)
        yield target


def _alembic_config(connection: Any, location: Path) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(location))
    config.attributes["connection"] = connection
    return config


def migrate(engine: Engine, revision: str = "head", *, attempts: int = 3) -> None:
    """Bring the schema to ``revision`` (idempotent; safe with concurrent callers).

    A connection cut meanwhile is retried (up to ``attempts`` tries in all); a server that
    is not there, or another error that a retry cannot help, is raised at once.
    """
    if revision == "head" and _at_revision(engine, SCHEMA_REVISION):
        return

    def upgrade() -> None:
        with _migration_lock(engine), engine.begin() as connection:
            if revision == "head" and not inspect(connection).get_table_names():
                _create_schema(connection)
                return
            from alembic import command

            logging.getLogger("alembic").setLevel(logging.WARNING)  # a line per plugin
            with _migrations_folder() as location:
                command.upgrade(_alembic_config(connection, location), revision)

    _retrying(
        upgrade,
        attempts=attempts,
        what="Migrating the database",
        give_up=lambda e: not transient(e) or unreachable(e),
    )


def _create_schema(connection: Connection) -> None:
    """An empty database gets the newest schema at once, from the models, stamped with
    its revision (what Alembic's "building an up to date database from scratch" does with
    ``create_all`` and ``stamp``), rather than by replaying every migration: a new user's
    first command starts faster. A test checks that the migrations build the same schema."""
    from colesbarcodes.db.models import Base

    Base.metadata.create_all(connection)
    connection.execute(
        text(
            "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
            "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
        )
    )
    connection.execute(
        text("INSERT INTO alembic_version (version_num) VALUES (:revision)"),
        {"revision": SCHEMA_REVISION},
    )


def _at_revision(engine: Engine, revision: str) -> bool:
    """Whether the schema is at ``revision`` (read without Alembic; False when unsure)."""
    try:
        with engine.connect() as connection:
            return bool(
                connection.scalar(
                    text("SELECT count(*) FROM alembic_version WHERE version_num = :revision"),
                    {"revision": revision},
                )
            )
    except DBAPIError:  # no such table yet, or no connection: the migration will say
        return False


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
