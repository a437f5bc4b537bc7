"""A healthy night logs no warning: the listing crawl, the loader's import and the barcode
crawl, run as the user runs them (subprocesses, every line of stdout and stderr read) on a
healthy replica with its bot check on. A warning on a clean run teaches users to ignore
warnings; each of these must be a sign that something needs a look."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from colesbarcodes.replica.process import ReplicaProcess
from tests.helpers import FAST_CRAWL, PROJECT, crawl_env

if TYPE_CHECKING:
    from collections.abc import Iterator

PRODUCTS = 60
STORES = "0584,0601"
COLES_LOADER = str(Path(sys.executable).parent / "coles-loader")

# A log record at WARNING or above, in Scrapy's format (``[logger] WARNING: ...``) or the
# loader's (``WARNING loaders.update: ...``); a Python warning (``...Warning: ...``); a
# traceback. Not the settings dump's ``'RETRY_GIVE_UP_LOG_LEVEL': 'WARNING'``.
NOISE = re.compile(
    r"(?:^|[\s\]])(?:WARNING|ERROR|CRITICAL)(?::| [\w.]+:)|\b\w+Warning: |^Traceback ",
    re.MULTILINE,
)


def noisy_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if NOISE.search(line)]


def test_the_noise_pattern_catches_warnings_and_errors_of_every_source() -> None:
    assert noisy_lines(
        "2026-12-06 00:10:46 [scrapy.settings] WARNING: Setting ITEM_PIPELINES contains\n"
        "2026-12-06 00:12:08,014 ERROR loaders.update: Cycle failed\n"
        "/x.py:3: DeprecationWarning: old\n"
        "Traceback (most recent call last):\n"
    ) == [
        "2026-12-06 00:10:46 [scrapy.settings] WARNING: Setting ITEM_PIPELINES contains",
        "2026-12-06 00:12:08,014 ERROR loaders.update: Cycle failed",
        "/x.py:3: DeprecationWarning: old",
        "Traceback (most recent call last):",
    ]
    assert not noisy_lines(
        " 'RETRY_GIVE_UP_LOG_LEVEL': 'WARNING',\n"
        "2026-12-06 00:12:08,014 INFO loaders.update: Imported 60 lines\n"
        " 'log_count/INFO': 11,\n"
    )


@pytest.fixture(scope="module")
def healthy_replica() -> Iterator[ReplicaProcess]:
    with ReplicaProcess(products=PRODUCTS, seed=3, challenge=True) as site:
        yield site


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=240, check=False
    )


def assert_quiet(step: str, proc: subprocess.CompletedProcess[str]) -> None:
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{step} exited {proc.returncode}:\n{output[-3000:]}"
    assert noisy_lines(output) == [], f"{step} is not quiet:\n{output[-6000:]}"


def test_a_healthy_night_logs_no_warning_from_listing_to_barcodes(
    database_url: str, healthy_replica: ReplicaProcess, tmp_path: Path
) -> None:
    product_inbox = tmp_path / "product_inbox"
    enrichment_inbox = tmp_path / "barcode_enrichment_inbox"
    product_inbox.mkdir()
    enrichment_inbox.mkdir()
    stats_file = tmp_path / f"stats-{uuid.uuid4().hex[:6]}.json"
    env = crawl_env(database_url, stats_file, COLES_ENRICHMENT_INBOX=str(enrichment_inbox))
    base_url = ["-s", f"COLES_BASE_URL={healthy_replica.url}", *FAST_CRAWL]
    scrapy = [sys.executable, "-m", "scrapy", "crawl"]

    listing = run(
        [
            *scrapy,
            "coles_products",
            "-a",
            f"inbox={product_inbox}",
            "-a",
            f"stores={STORES}",
            *base_url,
        ],
        env,
    )
    assert_quiet("scrapy crawl coles_products", listing)
    assert len(list(product_inbox.glob("*.jsonl"))) == 2  # one file a store
    listing_stats = json.loads(stats_file.read_text())
    assert "log_count/WARNING" not in listing_stats
    assert "log_count/ERROR" not in listing_stats

    imported = run([COLES_LOADER, "update", "--products", "--inbox", str(product_inbox)], env)
    assert_quiet("coles-loader update --products", imported)
    assert f"{2 * PRODUCTS} lines" in imported.stdout
    queued = run([COLES_LOADER, "queue-missing-barcodes"], env)
    assert_quiet("coles-loader queue-missing-barcodes", queued)
    assert f"Queued {PRODUCTS} coles SKUs" in queued.stdout

    stats_file.unlink()
    barcodes = run([*scrapy, "coles_barcodes", *base_url], env)
    assert_quiet("scrapy crawl coles_barcodes", barcodes)
    barcode_stats = json.loads(stats_file.read_text())
    assert barcode_stats["finish_reason"] == "finished"
    assert "log_count/WARNING" not in barcode_stats
    assert "log_count/ERROR" not in barcode_stats
    assert list(enrichment_inbox.glob("*.jsonl")) == []  # every SKU got its outcome


def test_a_healthy_woolworths_night_logs_no_warning_from_listing_to_comparison(
    database_url: str, healthy_replica: ReplicaProcess, tmp_path: Path, samples: Path
) -> None:
    product_inbox = tmp_path / "product_inbox"
    product_inbox.mkdir()
    stats_file = tmp_path / f"stats-{uuid.uuid4().hex[:6]}.json"
    env = crawl_env(database_url, stats_file, WOOLWORTHS_BASE_URL=healthy_replica.woolworths_url)
    scrapy = [sys.executable, "-m", "scrapy", "crawl"]

    listing = run(
        [*scrapy, "woolworths_products", "-a", f"inbox={product_inbox}", *FAST_CRAWL], env
    )
    assert_quiet("scrapy crawl woolworths_products", listing)
    assert len(list(product_inbox.glob("woolworths_store-online_*.jsonl"))) == 1
    listing_stats = json.loads(stats_file.read_text())
    assert "log_count/WARNING" not in listing_stats
    assert "log_count/ERROR" not in listing_stats

    # the real listing rows as they come, beside the crawl's file, and a Coles crawl's
    answer = json.loads((samples / "woolworths_listing_category_1.json").read_bytes())
    (product_inbox / "woolworths_fruit-veg.jsonl").write_text(
        "".join(
            json.dumps(row) + "\n" for bundle in answer["Bundles"] for row in bundle["Products"]
        )
    )
    coles = run(
        [
            *scrapy,
            "coles_products",
            "-a",
            f"inbox={product_inbox}",
            "-a",
            "stores=0584",
            "-s",
            f"COLES_BASE_URL={healthy_replica.url}",
            *FAST_CRAWL,
        ],
        env,
    )
    assert_quiet("scrapy crawl coles_products", coles)
    imported = run([COLES_LOADER, "update", "--products", "--inbox", str(product_inbox)], env)
    assert_quiet("coles-loader update --products", imported)
    assert "3 files" in imported.stdout
    compared = run([COLES_LOADER, "compare"], env)
    assert_quiet("coles-loader compare", compared)
    assert "sold by both coles and woolworths" in compared.stdout
