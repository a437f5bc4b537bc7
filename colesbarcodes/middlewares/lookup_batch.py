"""Batched look-ups: the prefill's remaining requests merged into GraphQL documents."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

import scrapy
from scrapy.spidermiddlewares.base import BaseSpiderMiddleware

from colesbarcodes.config import setting_float
from colesbarcodes.crawl.lookups import merge_lookup_requests
from colesbarcodes.extensions.site_session import SiteSession

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from typing import Self

    from scrapy.crawler import Crawler

__all__ = ["LookupBatchMiddleware"]


class LookupBatchMiddleware(BaseSpiderMiddleware):
    """Merges the one-SKU lookup requests that pass the prefill into GraphQL documents of up
    to ``SiteSession.batch_size`` SKUs of one store (aliases), so a request resolves many SKUs.

    It sits after the prefill, so only SKUs that need the site are batched. A partial batch
    leaves when the start stream pauses for ``COLES_GRAPHQL_BATCH_WAIT`` seconds (a frontier
    waiting for acknowledgements never waits for its own SKUs) or ends. Stats:
    ``coles/graphql/documents``, ``coles/graphql/skus``.
    """

    def __init__(self, crawler: Crawler, wait: float) -> None:
        super().__init__(crawler)
        self.wait = wait

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler, setting_float(crawler.settings, "COLES_GRAPHQL_BATCH_WAIT"))

    def _size(self) -> int:
        session = self.crawler.get_extension(SiteSession)
        return session.batch_size if session is not None else 1

    @staticmethod
    def _batchable(obj: Any) -> bool:
        return (
            isinstance(obj, scrapy.Request)
            and obj.meta.get("coles_source") == "graphql"
            and len(obj.meta.get("lookups") or ()) == 1
        )

    def _merged(self, group: list[scrapy.Request]) -> scrapy.Request:
        stats = self.crawler.stats
        stats.inc_value("coles/graphql/documents")
        stats.inc_value("coles/graphql/skus", len(group))
        return merge_lookup_requests(group)

    async def process_start(self, start: AsyncIterator[Any]) -> AsyncIterator[Any]:
        groups: dict[tuple[str, str], list[scrapy.Request]] = {}
        iterator = aiter(start)
        upcoming: asyncio.Future[Any] | None = None
        try:
            while True:
                if upcoming is None:
                    upcoming = asyncio.ensure_future(anext(iterator))
                if groups:
                    done, _ = await asyncio.wait({upcoming}, timeout=self.wait)
                    if not done:  # the stream pauses: send what waits
                        for group in groups.values():
                            yield self._merged(group)
                        groups.clear()
                        continue
                try:
                    obj = await upcoming
                except StopAsyncIteration:
                    break
                finally:
                    upcoming = None
                if not self._batchable(obj):
                    yield obj
                    continue
                key = (str(obj.meta["lookups"][0].get("store_id")), obj.url)
                group = groups.setdefault(key, [])
                group.append(obj)
                if len(group) >= self._size():
                    yield self._merged(groups.pop(key))
            for group in groups.values():
                yield self._merged(group)
        finally:
            if upcoming is not None and not upcoming.done():
                upcoming.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await upcoming
