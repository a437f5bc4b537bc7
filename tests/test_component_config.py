"""The components' settings, read once into typed configs: their defaults are the project's
settings, a setting given is taken, and a value of the wrong type is refused with an error
that names the setting (or the spider argument) and what it expects."""

from __future__ import annotations

import importlib.util
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from scrapy.exceptions import NotConfigured
from scrapy.settings import Settings
from scrapy.utils.misc import build_from_crawler
from scrapy.utils.test import get_crawler

import colesbarcodes.settings
from colesbarcodes.config import ConfigurationError
from colesbarcodes.extensions.crawl_monitor import MonitorConfig, Thresholds
from colesbarcodes.extensions.enrichment_files import EnrichmentFilesConfig
from colesbarcodes.extensions.run_ledger import LedgerConfig
from colesbarcodes.frontier.worker import FrontierConfig
from colesbarcodes.middlewares.bot_check import BotCheckConfig
from colesbarcodes.middlewares.exit_pool import ExitPoolConfig
from colesbarcodes.middlewares.prefill import PrefillConfig, PrefillMiddleware
from colesbarcodes.middlewares.retry_after import RetryAfterConfig
from colesbarcodes.pipelines.barcode_upsert import BarcodeUpsertPipeline, UpsertConfig
from colesbarcodes.spiders.coles_barcodes import BarcodesArguments, ColesBarcodesSpider
from colesbarcodes.spiders.coles_products import ColesProductsSpider, ProductsArguments

if TYPE_CHECKING:
    from collections.abc import Callable

CONFIGS = [
    PrefillConfig,
    BotCheckConfig,
    ExitPoolConfig,
    RetryAfterConfig,
    EnrichmentFilesConfig,
    MonitorConfig,
    LedgerConfig,
    UpsertConfig,
    FrontierConfig,
]


@pytest.fixture
def project_settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    """``colesbarcodes/settings.py`` as a crawl reads it with no COLES_* or DATABASE_URL
    variable in the environment (read afresh: the imported module keeps the test run's)."""
    for name in list(os.environ):
        if name.startswith("COLES_") or name == "DATABASE_URL":
            monkeypatch.delenv(name)
    path = colesbarcodes.settings.__file__
    assert path is not None
    spec = importlib.util.spec_from_file_location("colesbarcodes_settings_fresh", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    settings = Settings()
    settings.setmodule(module)
    return settings


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.__name__)
def test_a_config_left_alone_has_the_project_settings_values(
    config: Callable[[], Any], project_settings: Settings
) -> None:
    assert config.from_settings(project_settings) == config()  # type: ignore[attr-defined]


def test_the_documented_defaults_are_the_configs_defaults() -> None:
    assert UpsertConfig().batch_size == 500
    assert UpsertConfig().max_delay == 5.0
    assert UpsertConfig().retries == 5
    assert PrefillConfig().recheck == timedelta(days=7)
    assert BotCheckConfig() == BotCheckConfig(max_pages=3, timeout=30.0)
    assert ExitPoolConfig().exits[0].url is None  # no proxies: one direct exit
    assert EnrichmentFilesConfig().inbox == "inboxes/barcode_enrichment_inbox"
    assert FrontierConfig() == FrontierConfig(
        url="", key="colesbarcodes:frontier:coles", batch=50, prefetch=384, claim_timeout=300.0
    )


def test_settings_given_override_the_defaults(project_settings: Settings) -> None:
    project_settings.setdict(
        {
            "DATABASE_URL": "postgresql://somewhere/coles",
            "COLES_UPSERT_BATCH_SIZE": "20",
            "COLES_UPSERT_MAX_DELAY": "0.5",
            "COLES_DB_RETRIES": 2,
            "COLES_DB_WRITE_THREAD": "True",
            "COLES_JOB": "job-7",
            "COLES_RECHECK_DAYS": "1.5",
            "COLES_PROXIES": "http://one:8080,http://two:8080",
            "COLES_BLOCK_MAX_RETRIES": "0",
            "COLES_ARCHIVE_FINISHED_FILES": "1",
            "COLES_MONITOR_MAX_ERRORS": "3",
            "COLES_MONITOR_GTIN_SHARE": True,
        },
        priority="cmdline",
    )
    assert UpsertConfig.from_settings(project_settings) == UpsertConfig(
        database_url="postgresql://somewhere/coles",
        batch_size=20,
        max_delay=0.5,
        retries=2,
        write_in_thread=True,
        job="job-7",
    )
    assert PrefillConfig.from_settings(project_settings).recheck == timedelta(hours=36)
    exits = ExitPoolConfig.from_settings(project_settings)
    assert [e.url for e in exits.exits] == ["http://one:8080", "http://two:8080"]
    assert exits.max_retries == 0
    assert EnrichmentFilesConfig.from_settings(project_settings).archive is True
    monitor = MonitorConfig.from_settings(project_settings)
    assert monitor.thresholds == Thresholds(max_errors=3)
    assert monitor.gtin_share is True
    assert LedgerConfig.from_settings(project_settings).job == "job-7"


@pytest.mark.parametrize(
    ("config", "setting", "value", "message"),
    [
        (UpsertConfig, "COLES_UPSERT_BATCH_SIZE", "abc", "must be a whole number of 1 or more"),
        (UpsertConfig, "COLES_UPSERT_BATCH_SIZE", "0", "must be a whole number of 1 or more"),
        (UpsertConfig, "COLES_UPSERT_MAX_DELAY", "soon", "must be a number of 0 or more"),
        (UpsertConfig, "COLES_UPSERT_MAX_DELAY", "-1", "must be a number of 0 or more"),
        (UpsertConfig, "COLES_DB_WRITE_THREAD", "maybe", "must be true or false"),
        (PrefillConfig, "COLES_RECHECK_DAYS", "a week", "must be a number of 0 or more (days)"),
        (BotCheckConfig, "COLES_BOTCHECK_MAX_BROWSER_PAGES", "3.5", "must be a whole number"),
        (ExitPoolConfig, "COLES_EXIT_MAX_FAILURES", "five", "must be a whole number"),
        (MonitorConfig, "COLES_MONITOR_MAX_FAILED_SHARE", "25%", "must be a number from 0 to 1"),
        (MonitorConfig, "COLES_MONITOR_MAX_FAILED_SHARE", "25", "must be a number from 0 to 1"),
        (ExitPoolConfig, "COLES_BLOCK_BACKOFF", "-5", "must be a number of 0 or more"),
        (EnrichmentFilesConfig, "COLES_ARCHIVE_FINISHED_FILES", "yes", "must be true or false"),
        (FrontierConfig, "COLES_FRONTIER_CLAIM_TIMEOUT", "0", "must be a number above 0"),
        (FrontierConfig, "COLES_FRONTIER_URL", "localhost:6379", "must be a Redis URL"),
    ],
)
def test_a_setting_of_the_wrong_type_is_named_in_the_error(
    project_settings: Settings, config: Any, setting: str, value: str, message: str
) -> None:
    project_settings.set(setting, value, priority="cmdline")
    with pytest.raises(
        ConfigurationError, match=re.escape(f"the setting {setting} {message}")
    ) as e:
        config.from_settings(project_settings)
    assert str(e.value).endswith(f"not {value!r}")


def test_a_component_refuses_a_wrong_setting_when_it_is_built() -> None:
    crawler = get_crawler(settings_dict={"COLES_UPSERT_BATCH_SIZE": "abc"})
    with pytest.raises(ValueError, match="COLES_UPSERT_BATCH_SIZE must be a whole number"):
        build_from_crawler(BarcodeUpsertPipeline, crawler)


def test_a_component_turned_off_reads_none_of_its_other_settings() -> None:
    crawler = get_crawler(settings_dict={"PREFILL_ENABLED": False, "COLES_RECHECK_DAYS": "abc"})
    with pytest.raises(NotConfigured):
        build_from_crawler(PrefillMiddleware, crawler)


def test_a_component_is_built_with_the_config_of_its_settings() -> None:
    crawler = get_crawler(settings_dict={"COLES_UPSERT_BATCH_SIZE": 7, "COLES_JOB": "j"})
    pipeline = build_from_crawler(BarcodeUpsertPipeline, crawler)
    assert pipeline.config.batch_size == 7
    assert pipeline.config.job == "j"


# --- spider arguments -------------------------------------------------------------------


def test_spider_arguments_override_their_settings(project_settings: Settings) -> None:
    given = {"base_url": "http://site.test/", "store": "0601", "limit": "10", "frontier": None}
    arguments = BarcodesArguments.from_settings(project_settings, given)
    assert (arguments.base_url, arguments.default_store, arguments.limit) == (
        "http://site.test",
        "0601",
        10,
    )
    assert arguments.frontier_url == ""  # an argument not given leaves the setting
    listing = ProductsArguments.from_settings(project_settings, {"stores": "584, 601,0584"})
    assert listing.stores == ("0584", "0601")
    assert listing.inbox == Path("inboxes/product_inbox")


def test_spider_arguments_not_given_are_the_settings(project_settings: Settings) -> None:
    arguments = BarcodesArguments.from_settings(project_settings)
    assert arguments == BarcodesArguments(
        base_url="https://www.coles.com.au", default_store="0584", limit=0
    )


@pytest.mark.parametrize("limit", ["abc", "1.5", "ten", "-1"])
def test_a_limit_that_is_not_a_whole_number_is_refused_with_a_sentence(limit: str) -> None:
    crawler = get_crawler(
        ColesBarcodesSpider,
        settings_dict={"COLES_BASE_URL": "http://site.test", "COLES_STORE_ID": "0584"},
    )
    with pytest.raises(
        ConfigurationError, match=r"^the argument -a limit must be a whole number of SKUs"
    ) as e:
        ColesBarcodesSpider.from_crawler(crawler, limit=limit)
    assert str(e.value).endswith(f"not {limit!r}")


def test_a_store_id_a_file_name_cannot_carry_is_refused(project_settings: Settings) -> None:
    with pytest.raises(ConfigurationError, match="is not a Coles store id"):
        ProductsArguments.from_settings(project_settings, {"stores": "0584,../x"})


def test_an_argument_given_empty_is_refused_not_taken_for_the_default(
    project_settings: Settings,
) -> None:
    with pytest.raises(ConfigurationError, match=r"^the argument -a frontier= is empty"):
        BarcodesArguments.from_settings(project_settings, {"frontier": ""})


def test_a_spider_disables_a_component_whatever_path_spells_it() -> None:
    """The listing crawl turns the barcode pipeline off by its class: every spelling of its
    path goes, and one key is left (Scrapy warns when two keys load the same class)."""
    settings = Settings(
        {
            "ITEM_PIPELINES": {
                "colesbarcodes.pipelines.BarcodeUpsertPipeline": 300,
                "colesbarcodes.pipelines.barcode_upsert.BarcodeUpsertPipeline": 300,
            },
            "SPIDER_MIDDLEWARES": {"colesbarcodes.middlewares.prefill.PrefillMiddleware": 50},
        }
    )
    ColesProductsSpider.update_settings(settings)
    assert settings.getdict("ITEM_PIPELINES") == {
        "colesbarcodes.pipelines.barcode_upsert.BarcodeUpsertPipeline": None
    }
    assert settings.getdict("SPIDER_MIDDLEWARES") == {
        "colesbarcodes.middlewares.prefill.PrefillMiddleware": None
    }
