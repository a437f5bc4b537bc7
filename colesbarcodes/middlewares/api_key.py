"""The GraphQL API key: a refused key is refreshed once for every request waiting on it."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from colesbarcodes.crawl.control import close_crawl
from colesbarcodes.extensions.site_session import SiteSession
from colesbarcodes.site.unusable import Unusable, finish_reason

if TYPE_CHECKING:
    from typing import Self

    import scrapy
    from scrapy.crawler import Crawler
    from scrapy.http import Response

__all__ = ["ApiKeyMiddleware"]

logger = logging.getLogger(__name__)


class ApiKeyMiddleware:
    """Sends the current subscription key with every API request, and follows its rotation.

    A 401 makes the :class:`~colesbarcodes.extensions.site_session.SiteSession` read the home page again
    (once for all requests refused together) and the request is sent again with the new
    key. If the page, read again, still publishes the very key just refused, the site
    refuses what it publishes: the crawl closes with ``key_refused`` (exit status documented in
    ``colesbarcodes.commands.crawl``); the request's SKUs are recorded as failed. Stats:
    ``coles/key/refused_401``, ``coles/key/refreshed``.
    """

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.closing = False
        self._closing: asyncio.Future[None] | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    @property
    def session(self) -> SiteSession:
        return SiteSession.of(self.crawler)

    def process_request(self, request: scrapy.Request) -> None:
        if not request.meta.get("coles_api"):
            return
        session = self.session
        if session.config is not None:
            request.headers["ocp-apim-subscription-key"] = session.config.api_key
            request.meta["coles_api_key"] = session.config.api_key
        request.meta["coles_key_generation"] = session.generation

    async def process_response(self, request: scrapy.Request, response: Response) -> Any:
        if response.status != 401 or not request.meta.get("coles_api"):
            return response
        stats = self.crawler.stats
        stats.inc_value("coles/key/refused_401")
        session = self.session
        used = request.meta.get("coles_api_key")
        refusals = request.meta.get("coles_key_refusals", 0) + 1
        # Another request has read a new key meanwhile: send this one again with it. Else
        # read the home page (once for all the requests refused together): a new key there
        # means it rotated; the very key just refused means the site refuses what it
        # publishes, and asking again cannot help.
        if session.config is None or session.config.api_key == used:
            await session.refresh(request.meta.get("coles_key_generation", 0))
        fresh = session.config is not None and session.config.api_key != used
        if fresh and refusals <= 10:
            return request.replace(
                dont_filter=True, meta={**request.meta, "coles_key_refusals": refusals}
            )
        if not self.closing and self.crawler.engine is not None:
            self.closing = True
            logger.error(
                "The site refused the subscription key its home page publishes, read again "
                "after a first refusal: closing the crawl (see docs/site.md, section Key)"
            )
            self._closing = asyncio.ensure_future(
                close_crawl(
                    self.crawler,
                    finish_reason(
                        Unusable.KEY_REFUSED,
                        "the site refuses the subscription key its home page publishes",
                    ),
                )
            )
        return response
