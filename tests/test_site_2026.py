"""Both spiders against the site as it is in late 2026 (and as it was in 2024): the key in
``window.__RUNTIME_CONFIG__``, batched ``GetProductDetails`` documents, key rotation, the
Incapsula challenge and block page, exits through real forward proxies, and the exit status
of every early close. Real crawls (``scrapy crawl`` subprocesses) against the replica.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select

from colesbarcodes.db.models import CrawlRun
from colesbarcodes.replica.catalogue import Catalogue, ReplicaProduct
from colesbarcodes.replica.process import ReplicaProcess
from tests.conftest import require
from tests.helpers import lookups, retry_file_skus, run_crawl, write_jsonl
from tests.test_crawl import PRODUCTS, expected_outcome, url_of
from tests.test_listing_crawl import SMALL_PAGES, run_listing

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from pathlib import Path

    from sqlalchemy.engine import Engine

    from tests.proxies import ForwardProxy

CATALOGUE = Catalogue.generate(PRODUCTS, seed=1)
ACTIVE = [p for p in CATALOGUE if p.status == "active"]


def sku_lines(products: Sequence[ReplicaProduct]) -> list[dict[str, int]]:
    return [{"sku": p.sku} for p in products]


def expected(products: Sequence[ReplicaProduct]) -> dict[str, str]:
    return {str(p.sku): expected_outcome(p)[0] for p in products}


def stored_outcomes(engine: Engine) -> dict[str, str]:
    rows = lookups(engine)
    counts = Counter(sku for sku, _, _ in rows)
    assert all(n == 1 for n in counts.values()), "a SKU stored twice"
    return {sku: outcome for sku, outcome, _ in rows}


def chromium() -> str:
    path = os.environ.get("COLES_CHROMIUM_PATH", "/usr/bin/chromium")
    require(os.path.exists(path), f"Chromium not found at {path}")
    return path


@pytest.fixture
def site_2026() -> Iterator[ReplicaProcess]:
    with ReplicaProcess(products=PRODUCTS, seed=1) as site:
        yield site


# -- layouts, end to end through the challenge -------------------------------------------------


@pytest.mark.browser
@pytest.mark.parametrize("layout", ["2026", "2024"])
def test_each_layout_is_crawled_end_to_end_through_the_challenge_in_chromium(
    engine: Engine, enrichment_inbox: Path, layout: str
) -> None:
    chromium()
    products = list(CATALOGUE)[:60]
    write_jsonl(enrichment_inbox / "skus.jsonl", sku_lines(products))
    with ReplicaProcess(
        products=PRODUCTS, seed=1, challenge=True, args=["--layout", layout]
    ) as site:
        result = run_crawl(url_of(engine), enrichment_inbox, site.url)
        site_stats = site.stats()
    assert result.returncode == 0, result.log[-3000:]
    assert result.stats["coles/site/key_source"] == (
        "__RUNTIME_CONFIG__" if layout == "2026" else "__NEXT_DATA__"
    )
    assert result.stats["botcheck/solved"] == 1
    assert result.stats["playwright/page_count"] == 1  # one browser page, then plain HTTP
    assert site_stats["challenge"]["cookies_accepted"] == 1
    assert stored_outcomes(engine) == expected(products)
    if layout == "2026":  # the Incapsula cookies, whatever their names, passed the check
        assert "incap_ses_" in result.log and "reese84" not in result.log


# -- batched lookups -----------------------------------------------------------------------------


def test_one_request_resolves_many_skus_and_an_unknown_one_spoils_no_other(
    engine: Engine, site_2026: ReplicaProcess, enrichment_inbox: Path
) -> None:
    products = list(CATALOGUE)[:150]
    gone = [p.sku for p in ACTIVE[:3]]
    site_2026.configure(not_found_skus=gone)
    write_jsonl(enrichment_inbox / "skus.jsonl", sku_lines(products))
    result = run_crawl(url_of(engine), enrichment_inbox, site_2026.url)
    assert result.returncode == 0, result.log[-3000:]
    site = site_2026.stats()
    assert site["graphql_documents"] < len(products) / 10  # 24 per document by default
    assert site["graphql_products"] == len(products)  # each SKU asked for once
    assert all(n == 1 for n in site["by_sku_kind"]["graphql"].values())
    want = expected(products)
    want.update({str(sku): "not_found" for sku in gone})
    assert stored_outcomes(engine) == want
    assert result.stats["coles/graphql/skus"] / result.stats["coles/graphql/documents"] >= 20


def test_a_document_refused_as_too_complex_is_split_and_the_smaller_size_kept(
    engine: Engine, enrichment_inbox: Path
) -> None:
    products = list(CATALOGUE)[:PRODUCTS]
    write_jsonl(enrichment_inbox / "skus.jsonl", sku_lines(products))
    with ReplicaProcess(products=PRODUCTS, seed=1, args=["--max-aliases", "5"]) as site:
        result = run_crawl(
            url_of(engine), enrichment_inbox, site.url, "-s", "CONCURRENT_REQUESTS=1"
        )
        site_stats = site.stats()
    assert result.returncode == 0, result.log[-3000:]
    assert result.stats["coles/graphql/document_size"] == 5  # the limit the refusal stated
    # each document made before the refusal came back is refused once, none afterwards
    assert site_stats["too_complex"] <= -(-len(products) // 24) + 1
    assert stored_outcomes(engine) == expected(products)
    assert "asking for at most 5 per document" in result.log


def test_a_refusal_that_states_no_limit_halves_the_document(
    engine: Engine, enrichment_inbox: Path
) -> None:
    products = list(CATALOGUE)[:60]
    write_jsonl(enrichment_inbox / "skus.jsonl", sku_lines(products))
    with ReplicaProcess(
        products=PRODUCTS, seed=1, args=["--max-aliases", "5", "--config", '{"state_limit": false}']
    ) as site:
        result = run_crawl(url_of(engine), enrichment_inbox, site.url)
    assert result.returncode == 0, result.log[-3000:]
    assert result.stats["coles/graphql/document_size"] == 3  # 24 -> 12 -> 6 -> 3, then kept
    assert stored_outcomes(engine) == expected(products)
    assert "asking for at most 3 per document" in result.log


def test_batching_can_be_turned_off(
    engine: Engine, site_2026: ReplicaProcess, enrichment_inbox: Path
) -> None:
    products = list(CATALOGUE)[:20]
    write_jsonl(enrichment_inbox / "skus.jsonl", sku_lines(products))
    result = run_crawl(
        url_of(engine), enrichment_inbox, site_2026.url, "-s", "COLES_GRAPHQL_BATCH=1"
    )
    assert result.returncode == 0, result.log[-3000:]
    assert site_2026.stats()["graphql_documents"] == len(products)
    assert stored_outcomes(engine) == expected(products)


# -- the key -------------------------------------------------------------------------------------


def test_a_key_rotating_mid_crawl_is_read_again_and_every_sku_stored_once(
    engine: Engine, enrichment_inbox: Path
) -> None:
    products = list(CATALOGUE)[:120]
    write_jsonl(enrichment_inbox / "skus.jsonl", sku_lines(products))
    with ReplicaProcess(products=PRODUCTS, seed=1, args=["--rotate-key-after", "2"]) as site:
        result = run_crawl(
            url_of(engine), enrichment_inbox, site.url, "-s", "COLES_GRAPHQL_BATCH=8"
        )
    assert result.returncode == 0, result.log[-3000:]
    assert result.stats["coles/key/refreshed"] >= 2
    assert result.stats.get("coles/key/refused_401", 0) >= 2
    assert stored_outcomes(engine) == expected(products)


# -- the block page and exits --------------------------------------------------------------------


@pytest.mark.proxy
def test_a_blocked_exit_moves_the_crawl_to_an_accepted_one_without_a_browser(
    engine: Engine, enrichment_inbox: Path, forward_proxies: list[ForwardProxy]
) -> None:
    blocked, accepted = forward_proxies
    products = list(CATALOGUE)[:80]
    write_jsonl(enrichment_inbox / "skus.jsonl", sku_lines(products))
    refused = f"127.0.0.1,{blocked.exit_address}"  # the direct address and the first exit
    with ReplicaProcess(products=PRODUCTS, seed=1, args=["--block-clients", refused]) as site:
        result = run_crawl(
            url_of(engine),
            enrichment_inbox,
            site.url,
            "-s",
            f"COLES_PROXIES={blocked.url},{accepted.url}",
        )
        site_stats = site.stats()
    assert result.returncode == 0, result.log[-3000:]
    assert result.stats["exit/rotated"] >= 1
    assert result.stats["exit/blocked"] >= 1
    assert "playwright/page_count" not in result.stats  # no browser for a block
    assert site_stats["blocked"] >= 1
    assert site_stats["by_client"].get(accepted.exit_address, 0) > 0
    assert stored_outcomes(engine) == expected(products)
    # the proxies' passwords appear nowhere: log, stats, run ledger
    passwords = [proxy.password for proxy in forward_proxies if proxy.password]
    assert passwords, "the proxies of this test use credentials"
    with engine.connect() as conn:
        runs = [str(tuple(run)) for run in conn.execute(select(CrawlRun)).all()]
    for password in passwords:
        assert password not in result.log
        assert password not in json.dumps(result.stats, default=str)
        assert all(password not in run for run in runs)


def test_a_blocked_address_without_proxies_ends_the_crawl_as_blocked_and_loses_nothing(
    engine: Engine, enrichment_inbox: Path
) -> None:
    products = list(CATALOGUE)[:30]
    write_jsonl(enrichment_inbox / "skus.jsonl", sku_lines(products))
    with ReplicaProcess(products=PRODUCTS, seed=1) as site:
        site.configure(block_clients=["127.0.0.1"])
        result = run_crawl(
            url_of(engine),
            enrichment_inbox,
            site.url,
            "-s",
            "COLES_BLOCK_MAX_RETRIES=2",
            "-s",
            "COLES_BLOCK_BACKOFF=0.1",
        )
        site_stats = site.stats()
    assert result.returncode == 5, result.log[-3000:]
    assert result.stats["finish_reason"].startswith("blocked")
    assert "COLES_PROXIES" in result.stats["finish_reason"]
    assert "playwright/page_count" not in result.stats
    assert 3 <= site_stats["blocked"] <= 8  # home page and robots.txt, each retried twice
    assert "Traceback" not in result.log
    # nothing lost: every SKU is still in the inbox for the next run
    assert retry_file_skus(enrichment_inbox) == sorted(p.sku for p in products)


def test_a_block_mid_crawl_records_the_unanswered_skus_for_a_retry(
    engine: Engine, site_2026: ReplicaProcess, enrichment_inbox: Path
) -> None:
    """The site accepts the home page, then blocks the address: the crawl ends as blocked,
    and the SKUs asked since are failed outcomes, not lost."""
    products = list(CATALOGUE)[:40]
    write_jsonl(enrichment_inbox / "skus.jsonl", sku_lines(products))
    site_2026.configure(block_clients=["127.0.0.1"], block_after=1)
    result = run_crawl(
        url_of(engine),
        enrichment_inbox,
        site_2026.url,
        "-s",
        "COLES_BLOCK_MAX_RETRIES=1",
        "-s",
        "COLES_BLOCK_BACKOFF=0.1",
    )
    assert result.returncode == 5, result.log[-3000:]
    stored = stored_outcomes(engine)
    assert stored and set(stored.values()) == {"failed"}
    # every SKU is in a retry file, or in the file that stays claimed for the next run
    kept = retry_file_skus(enrichment_inbox) + retry_file_skus(enrichment_inbox / "processing")
    assert sorted(set(kept)) == sorted(p.sku for p in products)


# -- early closes and their exit status ----------------------------------------------------------


def test_an_unreachable_site_exits_4_with_the_inbox_untouched(
    engine: Engine, enrichment_inbox: Path
) -> None:
    write_jsonl(enrichment_inbox / "one.jsonl", [{"sku": ACTIVE[0].sku}])
    result = run_crawl(
        url_of(engine), enrichment_inbox, "http://127.0.0.1:1", "-s", "RETRY_TIMES=0"
    )
    assert result.returncode == 4, result.log[-3000:]
    assert result.stats["finish_reason"].startswith("site_unreachable")
    assert (enrichment_inbox / "one.jsonl").exists()
    assert "Traceback" not in result.log
    with engine.connect() as conn:
        reasons = [r.finish_reason for r in conn.execute(select(CrawlRun.finish_reason))]
    assert reasons and reasons[-1].startswith("site_unreachable")


def test_a_home_page_without_a_key_exits_4_and_names_the_change(
    engine: Engine, site_2026: ReplicaProcess, enrichment_inbox: Path
) -> None:
    site_2026.configure(publish_key=False)
    write_jsonl(enrichment_inbox / "one.jsonl", [{"sku": ACTIVE[0].sku}])
    result = run_crawl(url_of(engine), enrichment_inbox, site_2026.url)
    assert result.returncode == 4, result.log[-3000:]
    assert result.stats["finish_reason"].startswith("site_changed")
    assert "BFF_API_SUBSCRIPTION_KEY" in result.stats["finish_reason"]
    assert (enrichment_inbox / "one.jsonl").exists()


def test_a_key_refused_twice_in_a_row_exits_6_and_loses_nothing(
    engine: Engine, site_2026: ReplicaProcess, enrichment_inbox: Path
) -> None:
    products = ACTIVE[:10]
    site_2026.configure(published_key="0" * 32)  # the page shows a key the API refuses
    write_jsonl(enrichment_inbox / "skus.jsonl", sku_lines(products))
    result = run_crawl(url_of(engine), enrichment_inbox, site_2026.url)
    assert result.returncode == 6, result.log[-3000:]
    assert result.stats["finish_reason"].startswith("key_refused")
    assert result.stats["coles/key/refreshed"] == 1  # read again once, not forever
    assert sorted(set(retry_file_skus(enrichment_inbox))) == sorted(p.sku for p in products)


def test_an_unreachable_database_exits_7(site_2026: ReplicaProcess, enrichment_inbox: Path) -> None:
    write_jsonl(enrichment_inbox / "skus.jsonl", [{"sku": ACTIVE[0].sku}])
    result = run_crawl("postgresql://postgres@127.0.0.1:1/nowhere", enrichment_inbox, site_2026.url)
    assert result.returncode == 7, result.log[-3000:]
    assert (enrichment_inbox / "skus.jsonl").exists()


def test_an_unreachable_frontier_exits_8(
    engine: Engine, site_2026: ReplicaProcess, enrichment_inbox: Path
) -> None:
    result = run_crawl(
        url_of(engine), enrichment_inbox, site_2026.url, "-a", "frontier=redis://127.0.0.1:1/0"
    )
    assert result.returncode == 8, result.log[-3000:]
    assert result.stats["finish_reason"].startswith("frontier_unavailable")
    assert "Traceback" not in result.log


# -- the listing spider --------------------------------------------------------------------------


@pytest.mark.parametrize(("layout", "source"), [("2026", "graphql"), ("2024", "browse.json")])
def test_the_listing_spider_reads_the_tree_from_graphql_or_the_old_route(
    tmp_path: Path, layout: str, source: str
) -> None:
    with ReplicaProcess(products=300, seed=3, args=[*SMALL_PAGES, "--layout", layout]) as site:
        result = run_listing(tmp_path, site.url)
        site_stats = site.stats()
    assert result.returncode == 0, result.log[-3000:]
    assert result.stats["listing/categories_source"] == source
    assert site_stats["by_kind"]["categories"] == (0 if source == "graphql" else 1)
    assert list(result.inbox.glob("*.jsonl"))
