"""store_prices pages half empty, for in-place (HOT) updates on PostgreSQL

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04

Each day's import updates most rows of ``store_prices`` (``last_seen``, and the prices
that changed). With full pages, every updated row version goes to another page and needs
new entries in the table's indexes; with room left on each page, PostgreSQL writes it
beside the old one and touches no index. Pages written before this revision fill up as
they are; new pages (and the whole table after a ``VACUUM FULL``) keep the room. SQLite has
no such setting.
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

FILLFACTOR = 50  # colesbarcodes.db.models.STORE_PRICES_FILLFACTOR when this was written


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE store_prices SET (fillfactor = {FILLFACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE store_prices RESET (fillfactor)")
