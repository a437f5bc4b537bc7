"""JSON lines written with orjson (feed format ``coles_jsonl``)."""

from __future__ import annotations

from typing import Any

import orjson
from scrapy.exporters import JsonLinesItemExporter

__all__ = ["ListingLinesExporter"]


class ListingLinesExporter(JsonLinesItemExporter):
    """JSON lines written with orjson (the listing crawl writes some 30,000 lines a store):
    plain dict items without field selection take the fast path, anything else is left
    to Scrapy's exporter. Feed format ``coles_jsonl`` (``FEED_EXPORTERS``)."""

    def __init__(self, file: Any, **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        self._fast = (
            self.fields_to_export is None
            and not self.indent
            and (self.encoding or "utf-8").lower().replace("-", "") == "utf8"
        )

    def export_item(self, item: Any) -> None:
        if self._fast and item.__class__ is dict:
            try:
                self.file.write(orjson.dumps(item, option=orjson.OPT_APPEND_NEWLINE))
            except TypeError:  # a value orjson cannot write: Scrapy's encoder can
                pass
            else:
                return
        super().export_item(item)
