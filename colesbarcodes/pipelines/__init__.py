"""Item pipelines of the crawls."""

from colesbarcodes.pipelines.barcode_upsert import BarcodeUpsertPipeline

__all__ = ["BarcodeUpsertPipeline"]
