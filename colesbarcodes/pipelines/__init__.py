"""Item pipelines of the crawls."""

from colesbarcodes.pipelines.barcodes import BarcodeUpsertPipeline

__all__ = ["BarcodeUpsertPipeline"]
