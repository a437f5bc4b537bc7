"""Spider arguments that override settings become those settings, in one place.

Components (the extensions, the pipeline) read settings only, never attributes of the
spider; a spider's ``from_crawler`` runs before they are built, while the settings can
still be changed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from colesbarcodes.config import setting_str

if TYPE_CHECKING:
    from collections.abc import Mapping

    from scrapy import Spider
    from scrapy.crawler import Crawler
    from scrapy.settings import BaseSettings

__all__ = ["argument_or_setting", "arguments_as_settings"]

# scrapyd's job id, passed to every spider as ``-a _job=...``
JOB_ARGUMENT = ("_job", "COLES_JOB")


def arguments_as_settings(
    crawler: Crawler, spider: Spider, given: Mapping[str, object], names: Mapping[str, str]
) -> None:
    """Set each setting in ``names`` (argument → setting) that its argument was given for,
    at the spider's priority; scrapyd's ``_job`` becomes ``COLES_JOB``."""
    wanted = {**names, JOB_ARGUMENT[0]: JOB_ARGUMENT[1]}
    for argument, setting in wanted.items():
        value = given.get(argument) or getattr(spider, argument, None)
        if value:
            crawler.settings.set(setting, str(value), priority="spider")


def argument_or_setting(
    given: Mapping[str, object], argument: str, settings: BaseSettings, setting: str
) -> str:
    """The spider argument ``argument`` if it was given (not empty), else the setting."""
    value = given.get(argument)
    return str(value) if value else setting_str(settings, setting)
