"""How far one store's walk through the listings got: it decides whether that store's
file is complete."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from colesbarcodes.config import ConfigurationError
from colesbarcodes.gtin import shown
from colesbarcodes.inbox.lines import LineError, normalize_store_id

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["StoreWalk", "parse_stores", "store_id"]

_STORE_RE = re.compile(r"^[0-9A-Za-z]{1,16}$")  # what the loader reads back from a file name


@dataclass
class StoreWalk:
    """One store's walk through the listings: complete once every listing request issued
    for it has been answered and none failed (beyond the tolerance)."""

    store_id: str
    scheduled: bool = False  # the first request of every planned category was issued
    pending: int = 0  # listing requests issued and not answered yet
    failed: int = 0  # pages that gave nothing usable after retries
    truncated: list[str] = field(default_factory=list)  # too big to list, no sub-categories
    seen: set[int] = field(default_factory=set)  # SKUs already written for this store

    def problem(
        self, max_failed: int, tolerance: str = "COLES_LISTING_MAX_FAILED_PAGES"
    ) -> str | None:
        """Why this store's file is not complete, or ``None`` when it is (``tolerance``
        names the setting that allows ``max_failed`` lost pages)."""
        if not self.scheduled:
            return "the walk through the categories did not get going"
        if self.pending:
            return f"{self.pending} listing pages were never answered (the crawl stopped early)"
        lost = self.failed + len(self.truncated)
        if lost > max_failed:
            parts = []
            if self.failed:
                parts.append(f"{self.failed} listing pages failed")
            if self.truncated:
                parts.append(
                    f"{len(self.truncated)} categories exceed the page cap with no "
                    f"sub-categories ({', '.join(self.truncated[:5])})"
                )
            return f"{' and '.join(parts)} ({tolerance}={max_failed})"
        return None


def parse_stores(value: str | Iterable[str], name: str = "the argument -a stores") -> list[str]:
    """Store ids from ``0584,0601`` (commas or spaces; Coles ids zero-padded to 4 digits),
    in order, without repeats. Raises ConfigurationError, naming ``name``, for an id that
    is not a Coles store number, and for none at all."""
    tokens = re.split(r"[,\s]+", value) if isinstance(value, str) else list(value)
    stores: list[str] = []
    for token in tokens:
        if not str(token).strip():
            continue
        stores.append(store_id(str(token), name))
    if not stores:
        raise ConfigurationError(f"{name} names no store: give store numbers such as 0584,0601")
    return list(dict.fromkeys(stores))


def store_id(value: str, name: str) -> str:
    """One Coles store id (``584`` → ``0584``); anything but a store number raises
    ConfigurationError naming ``name``."""
    text = value.strip()
    try:
        store = normalize_store_id("coles", text)
    except LineError:
        store = None
    if store is None or not store.isdigit() or not _STORE_RE.match(store):
        raise ConfigurationError(
            f"{name}: {shown(value)} is not a Coles store id: give the store's number, such as 0584"
        )
    return store
