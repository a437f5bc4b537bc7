"""One feed per store and run: the ``FEEDS`` entries and the filter that routes each item
to its store's feed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from itemadapter import ItemAdapter
from scrapy.extensions.feedexport import ItemFilter

from colesbarcodes.feeds.storage import FEED_SCHEME

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path


__all__ = ["STORE_OPTION", "StoreItemFilter", "store_feeds", "store_file_name"]


STORE_OPTION = "coles_store_id"


"""Feed option naming the store whose items a feed takes."""


def store_file_name(store_id: str, stamp: str, company: str = "coles") -> str:
    """``coles_store-0584_20261124T060000Z.jsonl``, ``woolworths_store-online_...``: the
    loader takes the company and the store from the name."""
    return f"{company}_store-{store_id}_{stamp}.jsonl"


def store_feeds(
    stores: Iterable[str], inbox: Path, stamp: str, company: str = "coles"
) -> dict[str, dict[str, Any]]:
    """``FEEDS`` entries: one JSON-lines file per store in ``inbox``, published atomically."""
    feeds: dict[str, dict[str, Any]] = {}
    for store in stores:
        uri = (inbox.resolve() / store_file_name(store, stamp, company)).as_uri()
        feeds[FEED_SCHEME + uri.removeprefix("file")] = {
            "format": "coles_jsonl",
            "encoding": "utf-8",
            "store_empty": False,  # a store that listed nothing gets no file
            "item_filter": StoreItemFilter,
            STORE_OPTION: store,
        }
    return feeds


class StoreItemFilter(ItemFilter):
    """Lets into a feed only the items of its store (feed option ``coles_store_id``)."""

    def __init__(self, feed_options: dict[str, Any] | None) -> None:
        super().__init__(feed_options)
        self.store_id = (feed_options or {}).get(STORE_OPTION)

    def accepts(self, item: Any) -> bool:
        if isinstance(item, dict):
            return bool(item.get("store_id") == self.store_id)
        return bool(ItemAdapter(item).get("store_id") == self.store_id)
