"""Alembic environment: runs on the connection handed over by ``colesbarcodes.db.engine``."""

from __future__ import annotations

from alembic import context

from colesbarcodes.db.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - the project always hands a connection over
    raise RuntimeError("run migrations with colesbarcodes.db.engine.migrate()")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
