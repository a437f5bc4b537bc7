"""Spider arguments: the ones a spider does not know are refused, and those that override
settings become those settings, in one place.

Components (the extensions, the pipeline) read settings only, never attributes of the
spider; a spider's ``from_crawler`` runs before they are built, while the settings can
still be changed.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from colesbarcodes.config import ConfigurationError, setting_str
from colesbarcodes.gtin import shown

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from scrapy import Spider
    from scrapy.crawler import Crawler
    from scrapy.settings import BaseSettings

__all__ = [
    "argument_or_setting",
    "arguments_as_settings",
    "folder_value",
    "http_url",
    "named",
    "refuse_unknown_arguments",
]

# scrapyd's job id, passed to every spider as ``-a _job=...``
JOB_ARGUMENT = ("_job", "COLES_JOB")


def refuse_unknown_arguments(spider: str, given: Iterable[str], known: Iterable[str]) -> None:
    """Raise ConfigurationError for an argument ``spider`` does not take (a typo such as
    ``-a stor=0584`` would otherwise be ignored); scrapyd's own (``_job``...) pass."""
    names = sorted(known)
    for name in given:
        if name.startswith("_") or name in names:
            continue
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise ConfigurationError(
            f"unknown argument -a {name} for the spider {spider}: {hint}it takes {', '.join(names)}"
        )


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
    """The spider argument ``argument`` if it was given, else the setting. An argument
    given empty (``-a inbox=``) is refused: it is a slip, not a wish for the default."""
    value = given.get(argument)
    if value is None:
        return setting_str(settings, setting)
    if not str(value).strip():
        raise ConfigurationError(
            f"the argument -a {argument}= is empty: give a value, or leave the argument "
            f"out to use {setting}"
        )
    return str(value)


def http_url(name: str, value: str) -> str:
    """``value`` (the setting or argument ``name``) as an http(s) URL without its last
    ``/``; anything else raises ConfigurationError."""
    try:
        parts = urlsplit(value.strip())
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        parts = urlsplit("")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"{name} must be an http:// or https:// URL such as https://www.coles.com.au, "
            f"not {shown(value)}"
        )
    return value.strip().rstrip("/")


def folder_value(name: str, value: str, *, must_exist: bool) -> Path:
    """``value`` (the setting or argument ``name``) as a folder: never an existing file,
    and, with ``must_exist``, an existing folder; else ConfigurationError."""
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise ConfigurationError(f"{name} {value} is a file, not a folder: give a folder")
    if must_exist and not path.is_dir():
        raise ConfigurationError(
            f"{name} {value} does not exist: create the folder or give the right one"
        )
    return path


def named(given: Mapping[str, object], argument: str, setting: str) -> str:
    """How an error names a value: ``-a argument`` when it was given, else ``setting``."""
    return f"-a {argument}" if given.get(argument) is not None else setting
