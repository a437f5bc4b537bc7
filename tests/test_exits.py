"""Exits and exit statuses: what ``COLES_PROXIES`` accepts, and what a scheduler sees."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from colesbarcodes.commands.crawl import EXIT_STATUSES, SITE_EXIT_STATUSES, exit_status
from colesbarcodes.crawl.exits import Exit, ProxyConfigError, exits_from_setting, parse_proxies
from colesbarcodes.site.unusable import SiteUnusable, Unusable

if TYPE_CHECKING:
    from pathlib import Path


def test_proxies_are_read_from_commas_new_lines_and_files(tmp_path: Path) -> None:
    listed = tmp_path / "proxies.txt"
    listed.write_text("# exits in Sydney\nhttp://u:p@10.0.0.3:3128\n\n10.0.0.4:8080\n")
    urls = parse_proxies(f"http://10.0.0.1:3128, http://10.0.0.2:3128\n@{listed}")
    assert urls == [
        "http://10.0.0.1:3128",
        "http://10.0.0.2:3128",
        "http://u:p@10.0.0.3:3128",
        "http://10.0.0.4:8080",
    ]


def test_no_proxies_means_one_direct_exit() -> None:
    assert exits_from_setting("") == [Exit(0)]
    assert exits_from_setting(None)[0].label == "direct"


@pytest.mark.parametrize(
    "value", ["ftp://host:21", "http://host", "http://:3128", "http://host:notaport"]
)
def test_a_bad_proxy_entry_is_a_clear_error(value: str) -> None:
    with pytest.raises(ProxyConfigError, match="COLES_PROXIES entry 1"):
        parse_proxies(value)


def test_an_unreadable_proxy_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ProxyConfigError, match="cannot read"):
        parse_proxies(f"@{tmp_path / 'missing.txt'}")


def test_proxy_credentials_never_appear_in_labels_or_errors() -> None:
    proxy = exits_from_setting("http://scraper:s3cr%40t@10.0.0.9:3128")[0]
    assert "s3cr" not in proxy.label and "scraper" not in proxy.label
    assert proxy.playwright_proxy() == {
        "server": "http://10.0.0.9:3128",
        "username": "scraper",
        "password": "s3cr@t",
    }
    with pytest.raises(ProxyConfigError) as error:
        parse_proxies("socks5://scraper:s3cret@10.0.0.9:1080")
    assert "s3cret" not in str(error.value)


@pytest.mark.parametrize(
    ("reason", "status"),
    [
        ("finished", 0),
        ("browser_unavailable: COLES_CHROMIUM_PATH /usr/bin/chromium did not start", 2),
        ("monitor_failed: failed share 0.40 > 0.25", 3),
        ("site_unreachable: home page answered HTTP 503", 4),
        ("site_changed: home page: no BFF_API_SUBSCRIPTION_KEY", 4),
        ("site_unusable: category tree answered 500", 4),
        ("blocked: the site's protection blocks every exit", 5),
        ("key_refused: the site refuses the subscription key", 6),
        ("database_unavailable: sqlite:///x", 7),
        ("frontier_unavailable: redis://127.0.0.1:1/0", 8),
    ],
)
def test_each_finish_reason_has_its_exit_status(reason: str, status: int) -> None:
    assert exit_status({"finish_reason": reason, "monitor/result": "passed"}) == status


def test_a_failed_monitor_is_non_zero_whatever_the_finish_reason() -> None:
    assert exit_status({"finish_reason": "shutdown", "monitor/result": "failed"}) == 3
    assert exit_status({"finish_reason": "blocked: x", "monitor/result": "failed"}) == 5
    assert len(set(EXIT_STATUSES.values())) == 7


@pytest.mark.parametrize("reason", list(Unusable))
def test_every_reason_the_site_is_unusable_ends_with_its_own_exit_status(reason: Unusable) -> None:
    unusable = SiteUnusable(reason, "home page answered HTTP 503")
    assert str(unusable) == f"{reason}: home page answered HTTP 503"
    stats = {"finish_reason": str(unusable), "monitor/result": "passed"}
    assert exit_status(stats) == SITE_EXIT_STATUSES[reason] > 0
