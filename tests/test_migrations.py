"""The Alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

from typing import TYPE_CHECKING

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from colesbarcodes.db.engine import current_revision, migrate
from colesbarcodes.db.models import Base

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


def test_migrated_schema_matches_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_migrating_again_is_a_no_op(engine: Engine) -> None:
    revision = current_revision(engine)
    assert revision is not None
    migrate(engine)
    assert current_revision(engine) == revision
