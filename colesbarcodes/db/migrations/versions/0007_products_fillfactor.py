"""products pages half empty on PostgreSQL

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06

A rewrite day (a site respelling every size, or naming a SKU differently at each store)
updates every product row, once or once per batch. With full pages each new row version
goes to another page and needs new entries in the primary key's and the barcode's
indexes; with room left on each page (``fillfactor``) PostgreSQL writes it beside the old
one and touches no index (a HOT update). Measured with ``bench/bench_loader.py``
(docs/product-update.md): none of such updates were HOT with full pages, 99-100 % of
them at 50. Pages written before this revision fill up as they are; new pages (and the whole
table after a ``VACUUM FULL``) keep the room. The indexes keep their default: a HOT
update writes no index entry. SQLite has no such setting.
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

FILLFACTOR = 50  # colesbarcodes.db.models.PRODUCTS_FILLFACTOR when this was written


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE products SET (fillfactor = {FILLFACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE products RESET (fillfactor)")
