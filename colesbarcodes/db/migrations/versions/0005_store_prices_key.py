"""store_prices keyed by (store_pk, sku_pk), pages half empty on PostgreSQL

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04

Two changes for the import, which writes a row per store and SKU every day:

* The surrogate ``id`` goes: (store_pk, sku_pk) was unique already and is what the
  import reads and writes by, so it becomes the primary key, store first. A store's file
  then reads and adds one contiguous stretch of the key's index, wherever the table has
  grown to, instead of one entry in every SKU's corner of it: a day's import no longer
  slows down as the table grows. Look-ups by SKU alone (reports, the enrichment queue)
  have an index of their own on ``sku_pk``. No sequence value per row either.
* Each day's import updates most rows (``last_seen``, and the prices that changed). With
  full pages, every updated row version goes to another page and needs a new index entry;
  with room left on each page (``fillfactor``), PostgreSQL writes it beside the old one
  and touches no index (a HOT update: no indexed column changes). Pages written before
  this revision fill up as they are; new pages (and the whole table after a
  ``VACUUM FULL``) keep the room. SQLite has no such setting.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

FILLFACTOR = 50  # colesbarcodes.db.models.STORE_PRICES_FILLFACTOR when this was written
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("store_prices", schema=None) as batch_op:
        batch_op.drop_constraint("uq_store_prices_sku_pk", type_="unique")
        batch_op.drop_constraint("pk_store_prices", type_="primary")
        batch_op.drop_column("id")
        batch_op.create_primary_key("pk_store_prices", ["store_pk", "sku_pk"])
        batch_op.create_index("ix_store_prices_sku_pk", ["sku_pk"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE store_prices SET (fillfactor = {FILLFACTOR})")


def downgrade() -> None:
    with op.batch_alter_table("store_prices", schema=None) as batch_op:
        batch_op.drop_index("ix_store_prices_sku_pk")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE store_prices RESET (fillfactor)")
        op.execute("ALTER TABLE store_prices DROP CONSTRAINT pk_store_prices")
        op.execute("ALTER TABLE store_prices ADD COLUMN id BIGSERIAL")
        op.execute("ALTER TABLE store_prices ADD CONSTRAINT pk_store_prices PRIMARY KEY (id)")
        op.create_unique_constraint(
            "uq_store_prices_sku_pk", "store_prices", ["sku_pk", "store_pk"]
        )
        return
    with op.batch_alter_table("store_prices", schema=None) as batch_op:
        batch_op.drop_constraint("pk_store_prices", type_="primary")
        batch_op.add_column(sa.Column("id", _ID, nullable=True))
        batch_op.create_unique_constraint("uq_store_prices_sku_pk", ["sku_pk", "store_pk"])
    op.execute("UPDATE store_prices SET id = rowid")
    with op.batch_alter_table("store_prices", schema=None) as batch_op:
        batch_op.alter_column("id", existing_type=_ID, nullable=False)
        batch_op.create_primary_key("pk_store_prices", ["id"])
