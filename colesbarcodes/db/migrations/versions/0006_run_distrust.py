"""run keys on lookups and crawl runs, distrusted runs

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05

Each crawl gets an identity from its start (``run_key``), stored with every lookup it
writes and, when it ends, with its ``crawl_runs`` row, beside ``distrust_reason``: why the
run's answers without a barcode are not to be believed (its drift monitor failed, or the
site answered unreadably). The prefill asks again for SKUs whose recent no_barcode,
not_found or invalid_barcode outcome came from such a run.

Existing rows get NULL: lookups stored before this revision are trusted as before. The new
columns are nullable without a default: PostgreSQL adds them without rewriting ``lookups``,
and SQLite with a plain ``ALTER TABLE ... ADD COLUMN`` (no table copy).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("crawl_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("run_key", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("distrust_reason", sa.String(length=1000), nullable=True))
        batch_op.create_index("ix_crawl_runs_run_key", ["run_key"], unique=True)

    with op.batch_alter_table("lookups", schema=None) as batch_op:
        batch_op.add_column(sa.Column("run_key", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("lookups", schema=None) as batch_op:
        batch_op.drop_column("run_key")

    with op.batch_alter_table("crawl_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_crawl_runs_run_key")
        batch_op.drop_column("distrust_reason")
        batch_op.drop_column("run_key")
