"""Turning off a project component for one spider, by the class itself.

Scrapy 2.19 reads a component priority dictionary by loading every key and keeping one per
class: two spellings of one class's path (``pipelines.X`` and ``pipelines.module.X``) are
one component, and it warns about the duplicate on every crawl. A spider that names the
class, not a path of its own, writes the one key Scrapy uses (the class's import path) and
removes any other spelling, so a healthy crawl logs no such warning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scrapy.settings import SETTINGS_PRIORITIES
from scrapy.utils.misc import load_object
from scrapy.utils.python import global_object_name

if TYPE_CHECKING:
    from scrapy.settings import BaseSettings

__all__ = ["disable_components", "spider_priority"]


def _refers_to(key: Any, component: type) -> bool:
    try:
        return load_object(key) is component
    except (ImportError, NameError, TypeError, ValueError):
        return False


def spider_priority(settings: BaseSettings, name: str) -> int:
    """The priority a spider writes setting ``name`` at: its own, or the priority the setting
    already has when that is higher (a spider that amends a setting keeps what the command
    line gave)."""
    return max(settings.getpriority(name) or 0, SETTINGS_PRIORITIES["spider"])


def disable_components(settings: BaseSettings, name: str, *components: type) -> None:
    """Disable ``components`` in the component dictionary ``name`` (at spider priority at
    least), whatever path the project or the command line spelled them with."""
    current = settings.getdict(name)
    for component in components:
        for key in [k for k in current if _refers_to(k, component)]:
            del current[key]
        current[global_object_name(component)] = None
    settings.set(name, current, spider_priority(settings, name))
