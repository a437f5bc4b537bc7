"""Typed reading of settings and spider arguments, with errors that say what is wrong.

Scrapy's ``settings.getint("COLES_UPSERT_BATCH_SIZE")`` on ``"abc"`` fails with
``invalid literal for int() with base 10: 'abc'``, naming neither the setting nor what it
expects. The components' config dataclasses (``from_settings``) read their settings with
these functions instead: a wrong value raises :class:`ValueError` with a sentence such as
``the setting COLES_UPSERT_BATCH_SIZE must be a whole number, not 'abc'``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from colesbarcodes.gtin import shown

if TYPE_CHECKING:
    from scrapy.settings import BaseSettings

__all__ = [
    "argument_int",
    "setting_bool",
    "setting_float",
    "setting_int",
    "setting_str",
]

_BOOL = "true or false (True/False, true/false or 1/0)"


def setting_int(settings: BaseSettings, name: str) -> int:
    """``name`` as a whole number."""
    try:
        return settings.getint(name)
    except (TypeError, ValueError):
        raise ValueError(
            f"the setting {name} must be a whole number, not {shown(settings.get(name))}"
        ) from None


def setting_float(settings: BaseSettings, name: str) -> float:
    """``name`` as a number."""
    try:
        return settings.getfloat(name)
    except (TypeError, ValueError):
        raise ValueError(
            f"the setting {name} must be a number, not {shown(settings.get(name))}"
        ) from None


def setting_bool(settings: BaseSettings, name: str) -> bool:
    """``name`` as true or false."""
    try:
        return settings.getbool(name)
    except (TypeError, ValueError):
        raise ValueError(
            f"the setting {name} must be {_BOOL}, not {shown(settings.get(name))}"
        ) from None


def setting_str(settings: BaseSettings, name: str) -> str:
    """``name`` as text (unset: empty)."""
    value = settings.get(name)
    return "" if value is None else str(value)


def argument_int(name: str, value: object, expected: str = "a whole number") -> int:
    """A spider argument (``-a name=value``) as a whole number."""
    try:
        return int(str(value).strip())
    except ValueError:
        raise ValueError(f"the argument {name} must be {expected}, not {shown(value)}") from None
