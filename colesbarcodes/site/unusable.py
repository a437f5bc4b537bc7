"""Why a crawl cannot use the site: one exception with a typed reason, for every spider.

The reason begins the crawl's finish reason (``blocked: home page: ...``), from which
``scrapy crawl`` takes its exit status (:mod:`colesbarcodes.commands.crawl`): the kinds are
told apart by their reason, never by reading the message.
"""

from __future__ import annotations

import enum

__all__ = ["FINISH_REASON_LIMIT", "SiteUnusable", "Unusable", "finish_reason"]

FINISH_REASON_LIMIT = 500  # characters: a finish reason is one line of the log


class Unusable(enum.StrEnum):
    """Why the site cannot be used; each value is the finish reason's first word."""

    BLOCKED = "blocked"  # the site's protection refuses every exit tried
    CHANGED = "site_changed"  # the site no longer has the shape the crawl relies on
    UNREACHABLE = "site_unreachable"  # no answer, or an HTTP error, from the site
    UNUSABLE = "site_unusable"  # the listing crawl cannot read what it needs to list
    KEY_REFUSED = "key_refused"  # the site refuses the subscription key it publishes
    BROWSER_UNAVAILABLE = "browser_unavailable"  # this machine's browser, not the site


def finish_reason(reason: Unusable, detail: str) -> str:
    """The finish reason of a crawl that closes for ``reason``: ``{reason}: {detail}``."""
    return f"{reason}: {detail}"[:FINISH_REASON_LIMIT]


class SiteUnusable(Exception):
    """The site cannot be used for the crawl: ``reason`` says why, ``detail`` what was seen.

    ``str()`` is the finish reason the crawl closes with (``{reason}: {detail}``).
    """

    def __init__(self, reason: Unusable, detail: str) -> None:
        super().__init__(finish_reason(reason, detail))
        self.reason = reason
        self.detail = detail

    @property
    def finish_reason(self) -> str:
        return str(self)
