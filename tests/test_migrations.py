"""The Alembic migrations build exactly the schema the models describe, and keep the rows of
an existing database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from colesbarcodes.db.engine import (
    MIGRATIONS,
    SCHEMA_REVISION,
    current_revision,
    make_engine,
    migrate,
    session_factory,
)
from colesbarcodes.db.lookups import recent_outcomes
from colesbarcodes.db.models import PRODUCTS_FILLFACTOR, Base

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _differences(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), Base.metadata))


def _storage_options(engine: Engine, table: str = "store_prices") -> list[str] | None:
    if engine.dialect.name != "postgresql":
        return None
    with engine.connect() as conn:
        options: list[str] | None = conn.scalar(
            text("SELECT reloptions FROM pg_class WHERE oid = CAST(:table AS regclass)"),
            {"table": table},
        )
        return options


def test_the_migrations_build_exactly_the_schema_the_models_describe(
    empty_database_url: str,
) -> None:
    engine = make_engine(empty_database_url)
    migrate(engine, SCHEMA_REVISION)  # a named revision: every script is run
    assert current_revision(engine) == SCHEMA_REVISION
    assert _differences(engine) == []
    if engine.dialect.name == "postgresql":
        assert _storage_options(engine) == ["fillfactor=50"]
        assert _storage_options(engine, "products") == [f"fillfactor={PRODUCTS_FILLFACTOR}"]
    engine.dispose()


def test_an_empty_database_gets_the_newest_schema_at_once_stamped_with_its_revision(
    empty_database_url: str,
) -> None:
    engine = make_engine(empty_database_url)
    migrate(engine)
    assert current_revision(engine) == SCHEMA_REVISION
    assert _differences(engine) == []
    if engine.dialect.name == "postgresql":
        assert _storage_options(engine) == ["fillfactor=50"]
        assert _storage_options(engine, "products") == [f"fillfactor={PRODUCTS_FILLFACTOR}"]
    with engine.begin() as conn:  # Alembic itself finds nothing more to do
        command.upgrade(_config(conn), "head")
    assert current_revision(engine) == SCHEMA_REVISION
    assert _differences(engine) == []
    engine.dispose()


def test_the_schema_revision_the_commands_check_is_the_newest_migration() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == SCHEMA_REVISION


def test_migrating_again_is_a_no_op(engine: Engine) -> None:
    revision = current_revision(engine)
    assert revision is not None
    migrate(engine)
    assert current_revision(engine) == revision


def test_store_prices_keep_their_rows_when_keyed_by_store_and_sku_and_back(
    empty_database_url: str,
) -> None:
    engine = make_engine(empty_database_url)
    migrate(engine, "0004")
    rows = [(1, 10, 2.5, "2026-11-23 06:00:00+00:00"), (1, 11, 3.0, "2026-11-23 06:00:00+00:00")]
    with engine.begin() as conn:
        for store_pk, sku_pk, price, seen in rows:
            conn.execute(
                text(
                    "INSERT INTO store_prices (store_pk, sku_pk, price, last_seen) "
                    "VALUES (:store, :sku, :price, :seen)"
                ),
                {"store": store_pk, "sku": sku_pk, "price": price, "seen": seen},
            )
    migrate(engine)
    key = inspect(engine).get_pk_constraint("store_prices")
    assert key["constrained_columns"] == ["store_pk", "sku_pk"]
    with engine.begin() as conn:
        stored = conn.execute(
            text("SELECT store_pk, sku_pk, price FROM store_prices ORDER BY sku_pk")
        ).all()
        assert [tuple(row) for row in stored] == [(1, 10, 2.5), (1, 11, 3.0)]
        with pytest.raises(IntegrityError), conn.begin_nested():
            conn.execute(
                text(
                    "INSERT INTO store_prices (store_pk, sku_pk, price, last_seen) "
                    "VALUES (1, 10, 9.9, '2026-11-24 06:00:00+00:00')"
                )
            )
    assert _differences(engine) == []
    with engine.begin() as conn:
        command.downgrade(_config(conn), "0004")
    key = inspect(engine).get_pk_constraint("store_prices")
    assert key["constrained_columns"] == ["id"]
    with engine.connect() as conn:
        ids = conn.execute(text("SELECT id, sku_pk FROM store_prices ORDER BY sku_pk")).all()
    assert len({row.id for row in ids}) == 2 and all(row.id is not None for row in ids)
    engine.dispose()


def test_lookups_and_runs_of_an_existing_database_gain_run_keys_and_stay_trusted(
    empty_database_url: str,
) -> None:
    engine = make_engine(empty_database_url)
    migrate(engine, "0005")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO crawl_runs (spider, started_at, finished_at, finish_reason, "
                "outcomes, stats) VALUES ('coles_barcodes', :at, :at, 'monitor_failed: x', "
                "'{}', '{}')"
            ),
            {"at": datetime.now(UTC)},
        )
        conn.execute(
            text(
                "INSERT INTO lookups (company, sku, outcome, looked_up_at) "
                "VALUES ('coles', '122234', 'no_barcode', :at)"
            ),
            {"at": datetime.now(UTC)},
        )
    migrate(engine)
    assert current_revision(engine) == SCHEMA_REVISION
    assert _differences(engine) == []
    with engine.connect() as conn:
        runs = conn.execute(text("SELECT run_key, distrust_reason FROM crawl_runs")).all()
        assert [tuple(r) for r in runs] == [(None, None)]
        assert conn.scalar(text("SELECT run_key FROM lookups")) is None
    with session_factory(engine)() as session:  # an outcome stored before keys is trusted
        since = datetime.now(UTC) - timedelta(days=7)
        assert list(recent_outcomes(session, "coles", ["122234"], since)) == ["122234"]
    with engine.begin() as conn:
        command.downgrade(_config(conn), "0005")
    assert "run_key" not in {c["name"] for c in inspect(engine).get_columns("lookups")}
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM lookups")) == 1
    engine.dispose()
