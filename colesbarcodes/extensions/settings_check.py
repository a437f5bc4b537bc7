"""Every documented setting checked before anything else is built, so that a wrong value
stops the crawl at its start with one sentence, not later or with a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from scrapy.exceptions import NotConfigured

from colesbarcodes.config import ConfigurationError, check_settings
from colesbarcodes.crawl.browser import check_browser
from colesbarcodes.crawl.exits import exits_from_setting, protection_of
from colesbarcodes.db.engine import DatabaseUrlError, check_database_url, database_url

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.settings import BaseSettings

__all__ = ["SettingsCheck", "check_crawl_settings"]


def check_crawl_settings(settings: BaseSettings) -> None:
    """Raise ConfigurationError for the first setting a crawl cannot use: the numbers and
    switches of :data:`colesbarcodes.config.RULES`, ``DATABASE_URL`` (a database the
    project supports, see :func:`~colesbarcodes.db.engine.check_database_url`),
    ``COLES_PROXIES``, ``COLES_STATS_FILE``
    (its folder must exist: it is written at the end) and the bot check's browser
    (``COLES_CHROMIUM_PATH``: it must start now, not fail when a challenge first needs it,
    maybe hours later; see :func:`~colesbarcodes.crawl.browser.check_browser`)."""
    check_settings(settings)
    url = settings.get("DATABASE_URL")
    try:  # every crawl records its run in the database; a MySQL URL is what users try
        check_database_url(database_url(str(url) if url else None))
    except DatabaseUrlError as error:
        raise ConfigurationError(f"DATABASE_URL {error}") from None
    exits_from_setting(settings.get("COLES_PROXIES"))
    protection_of(settings)  # CRAWL_RETAILER names a retailer the exits can read
    stats_file = str(settings.get("COLES_STATS_FILE") or "")
    if stats_file:
        path = Path(stats_file)
        if path.is_dir() or not path.parent.is_dir():
            raise ConfigurationError(
                f"COLES_STATS_FILE {stats_file}: "
                + ("is a folder" if path.is_dir() else f"the folder {path.parent} does not exist")
                + ": give a file path in an existing folder"
            )
    check_browser(settings)


class SettingsCheck:
    """The first extension built: checks the settings (:func:`check_crawl_settings`), then
    steps aside. Its error ends the crawl before any component, request or database
    connection is made."""

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> SettingsCheck:
        check_crawl_settings(crawler.settings)
        raise NotConfigured
