"""Typed reading of settings and spider arguments, with errors that say what is wrong.

Scrapy's ``settings.getint("COLES_UPSERT_BATCH_SIZE")`` on ``"abc"`` fails with
``invalid literal for int() with base 10: 'abc'``, naming neither the setting nor what it
expects. The components' config dataclasses (``from_settings``) read their settings with
these functions instead: a wrong value raises :class:`ConfigurationError` with a sentence
such as ``the setting COLES_UPSERT_BATCH_SIZE must be a whole number of 1 or more
(outcomes per transaction), not 'abc'``.

:data:`RULES` holds, in one place, the type and the limits of every number and switch the
crawls document: the readers apply them, and :func:`check_settings` reads them all before
a crawl starts (Scrapy's own settings included, which Scrapy reads without such checks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from colesbarcodes.gtin import shown

if TYPE_CHECKING:
    from scrapy.settings import BaseSettings

__all__ = [
    "RULES",
    "ConfigurationError",
    "Rule",
    "argument_int",
    "check_settings",
    "setting_bool",
    "setting_float",
    "setting_int",
    "setting_str",
]

_BOOL = "true or false (True/False, true/false or 1/0)"


class ConfigurationError(ValueError):
    """A setting, environment variable, spider argument or command option has a value the
    crawls cannot use. The message names it, says what it must be, and fits on one line:
    the crawl commands print it instead of a traceback and exit with status 2."""


@dataclass(frozen=True, slots=True)
class Rule:
    """What a documented setting takes: ``kind`` (``int``, ``float`` or ``bool``), the
    least value (``low``; ``above``: strictly above it), the greatest (``high``), and what
    the number counts (``unit``)."""

    kind: type
    low: float | None = None
    high: float | None = None
    above: bool = False
    unit: str = ""

    def expects(self) -> str:
        """``a whole number of 1 or more (outcomes per transaction)``, and the like."""
        if self.kind is bool:
            return _BOOL
        text = "a whole number" if self.kind is int else "a number"
        number = "{:g}".format
        if self.low is not None and self.high is not None:
            text += f" from {number(self.low)} to {number(self.high)}"
        elif self.low is not None:
            text += (
                f" above {number(self.low)}" if self.above else f" of {number(self.low)} or more"
            )
        return f"{text} ({self.unit})" if self.unit else text

    def allows(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.above else value < self.low):
            return False
        return self.high is None or value <= self.high


_SHARE = "a share: 0.05 is 5 %"
# Every number and switch the crawls document (README, docs/listing.md), with its limits.
RULES: dict[str, Rule] = {
    # the barcode crawl
    "COLES_MAX_SKUS": Rule(int, 0, unit="SKUs per crawl, 0 for no limit"),
    "COLES_RECHECK_DAYS": Rule(float, 0, unit="days"),
    "COLES_UPSERT_BATCH_SIZE": Rule(int, 1, unit="outcomes per transaction"),
    "COLES_UPSERT_MAX_DELAY": Rule(float, 0, unit="seconds"),
    "COLES_DB_RETRIES": Rule(int, 1, unit="attempts"),
    "COLES_DB_WRITE_THREAD": Rule(bool),
    "COLES_PRODUCT_PAGE_FALLBACK": Rule(bool),
    "COLES_ARCHIVE_FINISHED_FILES": Rule(bool),
    "COLES_BOTCHECK_ENABLED": Rule(bool),
    "COLES_BOTCHECK_MAX_BROWSER_PAGES": Rule(int, 0, unit="browser pages per crawl"),
    "COLES_BOTCHECK_TIMEOUT": Rule(float, 0, above=True, unit="seconds"),
    "COLES_GRAPHQL_BATCH": Rule(int, 1, unit="SKUs per GraphQL document, 1 for no batching"),
    "COLES_GRAPHQL_BATCH_WAIT": Rule(float, 0, unit="seconds"),
    "COLES_BLOCK_MAX_RETRIES": Rule(int, 0, unit="waits on a block page"),
    "COLES_BLOCK_BACKOFF": Rule(float, 0, unit="seconds"),
    "COLES_EXIT_MAX_FAILURES": Rule(int, 1, unit="connection failures in a row"),
    "PREFILL_ENABLED": Rule(bool),
    # monitors and the run ledger
    "COLES_MONITOR_ENABLED": Rule(bool),
    "COLES_MONITOR_MAX_FAILED_SHARE": Rule(float, 0, 1, unit=_SHARE),
    "COLES_MONITOR_MAX_CHALLENGE_SHARE": Rule(float, 0, 1, unit=_SHARE),
    "COLES_MONITOR_MAX_ITEMS_DROPPED": Rule(int, 0, unit="items"),
    "COLES_MONITOR_MAX_ERRORS": Rule(int, 0, unit="ERROR log lines"),
    "COLES_MONITOR_GTIN_SHARE": Rule(bool),
    "COLES_MONITOR_GTIN_DROP": Rule(float, 0, 1, unit="of the recent runs' median"),
    "COLES_MONITOR_GTIN_HISTORY": Rule(int, 1, unit="runs"),
    "COLES_MONITOR_GTIN_MIN_RECORDS": Rule(int, 1, unit="records"),
    "COLES_MONITOR_MIN_GTIN_SHARE": Rule(float, 0, 1, unit=_SHARE),
    "COLES_MONITOR_MAX_FORMAT_ERROR_SHARE": Rule(float, 0, 1, unit=_SHARE),
    "COLES_RUN_LEDGER_ENABLED": Rule(bool),
    "COLES_LEDGER_CONNECT_TIMEOUT": Rule(float, 0, above=True, unit="seconds"),
    # the shared frontier
    "COLES_FRONTIER_CLAIM_TIMEOUT": Rule(float, 0, above=True, unit="seconds"),
    "COLES_FRONTIER_BATCH": Rule(int, 1, unit="SKUs read at a time"),
    "COLES_FRONTIER_PREFETCH": Rule(int, 0, unit="SKUs, 0 for the default"),
    "COLES_FRONTIER_POLL": Rule(float, 0, above=True, unit="seconds"),
    "COLES_FRONTIER_MAX_DELIVERIES": Rule(int, 1, unit="deliveries"),
    "COLES_FRONTIER_WORKER": Rule(bool),
    # the listing crawl
    "COLES_LISTING_PAGE_SIZE": Rule(int, 1, unit="rows per listing page"),
    "COLES_LISTING_MAX_PAGES": Rule(int, 1, unit="pages"),
    "COLES_LISTING_MAX_FAILED_PAGES": Rule(int, 0, unit="pages"),
    "WOOLWORTHS_MAX_FAILED_PAGES": Rule(int, 0, unit="listing pages"),
    "COLES_LISTING_QUEUE_MISSING_BARCODES": Rule(bool),
    # Scrapy's own, as the README documents them
    "ROBOTSTXT_OBEY": Rule(bool),
    "AUTOTHROTTLE_ENABLED": Rule(bool),
    "CONCURRENT_REQUESTS": Rule(int, 1, unit="requests"),
    "CONCURRENT_REQUESTS_PER_DOMAIN": Rule(int, 1, unit="requests"),
    "DOWNLOAD_DELAY": Rule(float, 0, unit="seconds"),
    "DOWNLOAD_TIMEOUT": Rule(float, 0, above=True, unit="seconds"),
    "RETRY_TIMES": Rule(int, 0, unit="retries"),
    "RETRY_BACKOFF_BASE": Rule(float, 0, unit="seconds"),
    "RETRY_BACKOFF_MAX": Rule(float, 0, unit="seconds"),
    "RETRY_AFTER_MAX": Rule(float, 0, unit="seconds"),
}


def _refused(name: str, value: object, rule: Rule | None, default: str) -> ConfigurationError:
    expected = rule.expects() if rule is not None else default
    return ConfigurationError(f"the setting {name} must be {expected}, not {shown(value)}")


def _within(settings: BaseSettings, name: str, value: float) -> None:
    """Refuse a value given for ``name`` outside its limits (an unset one is the reader's
    default, not a value anybody chose)."""
    rule = RULES.get(name)
    if rule is not None and settings.get(name) is not None and not rule.allows(value):
        raise _refused(name, settings.get(name), rule, "")


def setting_int(settings: BaseSettings, name: str) -> int:
    """``name`` as a whole number (within its :data:`RULES` limits)."""
    try:
        value = settings.getint(name)
    except (TypeError, ValueError):
        raise _refused(name, settings.get(name), RULES.get(name), "a whole number") from None
    _within(settings, name, value)
    return value


def setting_float(settings: BaseSettings, name: str) -> float:
    """``name`` as a number (within its :data:`RULES` limits)."""
    try:
        value = settings.getfloat(name)
    except (TypeError, ValueError):
        raise _refused(name, settings.get(name), RULES.get(name), "a number") from None
    if value != value:  # NaN passes every comparison
        raise _refused(name, settings.get(name), RULES.get(name), "a number")
    _within(settings, name, value)
    return value


def setting_bool(settings: BaseSettings, name: str) -> bool:
    """``name`` as true or false."""
    try:
        return settings.getbool(name)
    except (TypeError, ValueError):
        raise _refused(name, settings.get(name), None, _BOOL) from None


def setting_str(settings: BaseSettings, name: str) -> str:
    """``name`` as text (unset: empty)."""
    value = settings.get(name)
    return "" if value is None else str(value)


def check_settings(settings: BaseSettings) -> None:
    """Read every setting of :data:`RULES`: the first wrong one raises ConfigurationError."""
    readers = {int: setting_int, float: setting_float, bool: setting_bool}
    for name, rule in RULES.items():
        readers[rule.kind](settings, name)


def argument_int(name: str, value: object, expected: str = "a whole number", low: int = 0) -> int:
    """A spider argument (``-a name=value``) as a whole number of ``low`` or more."""
    try:
        number = int(str(value).strip())
    except ValueError:
        number = low - 1
    if number < low:
        raise ConfigurationError(f"the argument {name} must be {expected}, not {shown(value)}")
    return number
