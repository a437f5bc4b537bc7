"""Inbox files: claiming them (``claims``), reading product lines (``lines``, pure) and the
barcode-enrichment file format (``enrichment``)."""
