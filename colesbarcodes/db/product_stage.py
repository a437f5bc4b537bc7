"""The staging of a batch's changed products on PostgreSQL, for one set-based update
(``BatchWriter._update_products_staged``)."""

from __future__ import annotations

from sqlalchemy import MetaData, Table

__all__ = ["CREATE_PRODUCT_STAGE", "UPDATE_PRODUCTS", "product_stage"]

# A batch's changed products (PostgreSQL): COPYed into a temporary table (emptied at commit,
# and before each use in case the transaction staged before) and written by one UPDATE,
# which leaves alone a row that comes out the same (a product renamed and named back
# within the batch): a rewritten row costs a row version and, unless HOT, index entries.
CREATE_PRODUCT_STAGE = """
    CREATE TEMPORARY TABLE IF NOT EXISTS stage_products (
        id bigint, name text, brand text, size text, barcode text, barcode_scope text,
        updated_at timestamptz
    ) ON COMMIT DELETE ROWS;
    DELETE FROM stage_products
"""


UPDATE_PRODUCTS = """
    UPDATE products p SET name = s.name, brand = s.brand, size = s.size, barcode = s.barcode,
        barcode_scope = s.barcode_scope, updated_at = s.updated_at
    FROM stage_products s
    WHERE p.id = s.id
      AND (p.name, p.brand, p.size, p.barcode, p.barcode_scope)
          IS DISTINCT FROM (s.name, s.brand, s.size, s.barcode, s.barcode_scope)
"""


# The staging table of changed products (PostgreSQL; made by ``CREATE_PRODUCT_STAGE``),
# named here for ``BatchWriter._copy_text``.
product_stage = Table("stage_products", MetaData())
