"""The bot check's browser (Chromium): tried before the first request, and named when it
fails later.

A crawl may meet the site's JavaScript challenge on its first request or hours later; the
browser that solves it is a program on this machine. A browser that cannot start is a
machine's problem, not the site's: before this module, a crawl handed the unsolved
challenge page on as if it were the site's answer, and ended ``site_changed`` (exit 4),
sending its user to look at the site. Now :func:`check_browser` tries the browser when the
crawl starts (a :class:`ConfigurationError`, exit 2, before any request), and a browser
that fails to launch all the same (removed since, or broken in a way ``--version`` does not
show) raises :class:`BrowserUnavailable`, whose message is the crawl's finish reason
(``browser_unavailable: ...``, exit 2).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scrapy.exceptions import IgnoreRequest

from colesbarcodes.config import ConfigurationError, setting_bool, setting_int
from colesbarcodes.site.unusable import SiteUnusable, Unusable

if TYPE_CHECKING:
    from collections.abc import Mapping

    from scrapy.settings import BaseSettings

__all__ = [
    "LATE_REMEDY",
    "SYSTEM_CHROMIUMS",
    "BrowserUnavailable",
    "browser_needed",
    "browser_unavailable",
    "check_browser",
    "is_launch_failure",
]

logger = logging.getLogger(__name__)

SYSTEM_CHROMIUMS = ("/usr/bin/chromium", "/usr/bin/chromium-browser")  # Debian's, Ubuntu's
REMEDY = "give the path of a Chromium binary, or unset it and apt-get install chromium"
LATE_REMEDY = "apt-get install chromium, or set COLES_CHROMIUM_PATH to a Chromium binary"
VERSION_TIMEOUT = 15.0  # seconds for ``--version`` (a cold disk on a busy machine)
LAUNCH_TIMEOUT = 60.0  # seconds for a whole Playwright launch, driver included
# Chromium-family browsers print MAJOR.MINOR.BUILD.PATCH ("Chromium 156.0.8078.114 built on
# Debian"); other programs answer --version too ("true (GNU coreutils) 9.1").
_CHROMIUM_VERSION = re.compile(r"\b\d+\.\d+\.\d+\.\d+\b")


class BrowserUnavailable(IgnoreRequest):
    """The browser did not start when a challenge needed it. The message is the finish
    reason: ``browser_unavailable: COLES_CHROMIUM_PATH <path> did not start ...``."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"{Unusable.BROWSER_UNAVAILABLE}: {detail}")
        self.detail = detail

    def unusable(self) -> SiteUnusable:
        """The reason the crawl that needed the browser ends with."""
        return SiteUnusable(Unusable.BROWSER_UNAVAILABLE, self.detail)


def browser_needed(settings: BaseSettings) -> bool:
    """Whether the crawl may open a browser: the bot check is on with a page budget."""
    return setting_bool(settings, "COLES_BOTCHECK_ENABLED") and (
        setting_int(settings, "COLES_BOTCHECK_MAX_BROWSER_PAGES") > 0
    )


def _executable(settings: BaseSettings) -> str:
    return str(settings.getdict("PLAYWRIGHT_LAUNCH_OPTIONS").get("executable_path") or "")


def check_browser(settings: BaseSettings) -> None:
    """Raise ConfigurationError unless the browser the bot check would launch starts.

    ``COLES_CHROMIUM_PATH`` (or Debian's Chromium, found by the settings) must be an
    executable file that answers ``--version`` with a Chromium version: it loads the
    program and its libraries, in about 30 ms, instead of a whole launch (0.5 s and more).
    With no such path the crawl would use Playwright's own browser, which is only known by
    launching it: that is done, in a subprocess, on those machines only.
    """
    if not browser_needed(settings):
        return
    started = time.monotonic()
    path = _executable(settings)
    if path:
        version = _version(path)
    else:
        version = _playwright_launch(settings.getdict("PLAYWRIGHT_LAUNCH_OPTIONS"))
    logger.info(
        "The bot check's browser: %s (%s; tried in %.0f ms)",
        version,
        path or "Playwright's own",
        (time.monotonic() - started) * 1000,
    )


def _version(path: str) -> str:
    """What ``path --version`` prints, if it is a Chromium; else ConfigurationError."""
    if not (Path(path).is_file() and os.access(path, os.X_OK)):
        raise ConfigurationError(f"COLES_CHROMIUM_PATH {path}: no executable there: {REMEDY}")
    try:
        # The configured browser, without a shell: the path is the program, not a command.
        done = subprocess.run(  # noqa: S603
            [path, "--version"],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=VERSION_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        problem = f"no answer to --version in {VERSION_TIMEOUT:g} s"
    except OSError as exc:
        problem = exc.strerror or type(exc).__name__
    else:
        lines = [line.strip() for line in (done.stdout or done.stderr).splitlines()]
        said = next((line for line in lines if line), "")[:80]
        if done.returncode == 0 and _CHROMIUM_VERSION.search(done.stdout):
            return " ".join(done.stdout.split())
        problem = (
            f"--version exited with status {done.returncode}"
            if done.returncode
            else "--version printed no Chromium version"
        ) + (f": {said!r}" if said else "")
    raise ConfigurationError(
        f"COLES_CHROMIUM_PATH {path}: no browser starts there ({problem}): {REMEDY}"
    )


def _playwright_launch(options: Mapping[str, Any]) -> str:
    """Launch Playwright's own Chromium once, in a subprocess (this process's event loop
    may be running); its version, else ConfigurationError."""
    try:
        done = subprocess.run(  # noqa: S603 - this interpreter running this module
            [sys.executable, "-m", __name__],
            input=json.dumps(dict(options), default=str),
            capture_output=True,
            text=True,
            errors="replace",
            timeout=LAUNCH_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        problem = f"no browser launched in {LAUNCH_TIMEOUT:g} s"
    else:
        if done.returncode == 0:
            return done.stdout.strip()
        lines = [line.strip() for line in (done.stderr or done.stdout).splitlines()]
        problem = next((line for line in reversed(lines) if line), "it failed")[:300]
    raise ConfigurationError(
        f"COLES_CHROMIUM_PATH is not set (nor found: {SYSTEM_CHROMIUMS[0]}) and Playwright's "
        f"own browser does not start ({problem}): {LATE_REMEDY}"
    )


def is_launch_failure(error: BaseException) -> bool:
    """A browser page failed because the browser itself did not start (Playwright's
    ``BrowserType.launch`` error), not because of the page or the site."""
    return str(error).lstrip().startswith("BrowserType.launch")


def browser_unavailable(settings: BaseSettings, error: BaseException) -> BrowserUnavailable:
    """The error for a launch that failed during the crawl, naming the browser."""
    path = _executable(settings)
    what = f"COLES_CHROMIUM_PATH {path}" if path else "Playwright's own browser"
    first = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return BrowserUnavailable(f"{what} did not start when the challenge needed it ({first[:200]})")


async def _launch(options: dict[str, Any]) -> str:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(**options)
        try:
            return f"Chromium {browser.version}"
        finally:
            await browser.close()


if __name__ == "__main__":  # the launch of _playwright_launch, options as JSON on stdin
    try:
        print(asyncio.run(_launch(json.load(sys.stdin))))
    except Exception as exc:  # one line for the parent's message, not a traceback
        print(" ".join(str(exc).splitlines()[:1]) or type(exc).__name__, file=sys.stderr)
        sys.exit(1)
