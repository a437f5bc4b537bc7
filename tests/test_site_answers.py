"""Real crawls against a replica that answers the way the live site plausibly goes wrong:
an outcome is stored only when the site said it; everything else is asked again, reported,
or left in the inbox for the next run.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING

import pytest

from colesbarcodes.replica.catalogue import Catalogue, ReplicaProduct
from colesbarcodes.replica.process import ReplicaProcess
from tests.helpers import lookups, run_crawl, write_jsonl

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from sqlalchemy.engine import Engine

PRODUCTS = 200
CATALOGUE = list(Catalogue.generate(PRODUCTS, seed=3))
RETRIES = ["-s", "RETRY_TIMES=2"]


def expected(product: ReplicaProduct) -> str:
    if product.status != "active":
        return "not_found"
    if product.gtin_kind in ("missing", "null", "empty"):
        return "no_barcode"
    return "invalid_barcode" if product.gtin_kind == "invalid" else "found"


def of_kind(outcome: str, count: int) -> list[ReplicaProduct]:
    chosen = [p for p in CATALOGUE if expected(p) == outcome][:count]
    assert len(chosen) == count, f"the catalogue has fewer than {count} {outcome} products"
    return chosen


@pytest.fixture
def site() -> Iterator[ReplicaProcess]:
    with ReplicaProcess(products=PRODUCTS, seed=3) as replica:
        yield replica


def url_of(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def retry_skus(inbox: Path) -> set[str]:
    return {
        str(json.loads(line)["sku"])
        for path in inbox.glob("retry-*.jsonl")
        for line in path.read_text().splitlines()
    }


def test_an_error_on_the_gtin_field_is_asked_again_then_failed_never_no_barcode(
    engine: Engine, site: ReplicaProcess, enrichment_inbox: Path
) -> None:
    """The server fails to resolve ``gtin`` for two SKUs: ``gtin`` is null *and* named in an
    error. Their neighbours in the same documents get their outcomes; they do not."""
    faulty = [of_kind("found", 1)[0], of_kind("no_barcode", 1)[0]]
    products = of_kind("found", 12)[1:] + of_kind("no_barcode", 4)[1:] + faulty
    site.configure(gtin_error_skus=[p.sku for p in faulty])
    write_jsonl(enrichment_inbox / "skus.jsonl", [{"sku": p.sku} for p in products])
    result = run_crawl(url_of(engine), enrichment_inbox, site.url, *RETRIES)
    assert result.returncode == 0, result.log[-3000:]
    stored = {sku: outcome for sku, outcome, _ in lookups(engine)}
    assert {stored[str(p.sku)] for p in faulty} == {"failed"}
    assert retry_skus(enrichment_inbox) == {str(p.sku) for p in faulty}
    assert all(stored[str(p.sku)] == expected(p) for p in products if p not in faulty)
    asked = site.stats()["by_sku_kind"]["graphql"]
    assert all(asked[str(p.sku)] == 3 for p in faulty)  # the first answer and two retries
    assert result.stats["coles/graphql/product_errors"] == 6
    assert "coles/answers_unreadable" not in result.stats  # the site's error, not a new shape


def test_an_unknown_sku_that_nulls_the_whole_document_is_not_found_at_no_cost_to_the_others(
    engine: Engine, site: ReplicaProcess, enrichment_inbox: Path
) -> None:
    """A schema that declares ``product`` non-null answers ``{"data": null, "errors": [...]}``
    when one SKU is unknown: that SKU is ``not_found``, the others are asked again at once."""
    products = of_kind("found", 16) + of_kind("not_found", 3) + of_kind("no_barcode", 5)
    site.configure(product_non_null=True)
    write_jsonl(enrichment_inbox / "skus.jsonl", [{"sku": p.sku} for p in products])
    result = run_crawl(url_of(engine), enrichment_inbox, site.url, *RETRIES)
    assert result.returncode == 0, result.log[-3000:]
    stored = {sku: outcome for sku, outcome, _ in lookups(engine)}
    assert stored == {str(p.sku): expected(p) for p in products}
    assert result.stats["coles/graphql/nulled_documents"] >= 1
    assert "retry/waited_ms" not in result.stats  # asked again at once, no backoff
    assert "coles/lookups_failed" not in result.stats
    asked = Counter(site.stats()["by_sku_kind"]["graphql"])
    assert max(asked.values()) <= 4  # at most once more for each unknown SKU before it


def test_a_maintenance_page_on_the_graphql_url_stops_the_crawl_and_stores_nothing(
    engine: Engine, site: ReplicaProcess, enrichment_inbox: Path
) -> None:
    products = of_kind("found", 30) + of_kind("no_barcode", 10)
    write_jsonl(enrichment_inbox / "skus.jsonl", [{"sku": p.sku} for p in products])
    site.configure(breaks=["graphql-maintenance"])
    broken = run_crawl(url_of(engine), enrichment_inbox, site.url, *RETRIES)
    assert broken.returncode == 4, broken.log[-3000:]  # the site changed
    reason = broken.stats["finish_reason"]
    assert reason.startswith("site_changed: GraphQL answered 3 documents in a row unreadably")
    assert 'not JSON (HTTP 200, text/html, 291 bytes: "<!DOCTYPE html>' in reason
    assert "We'll be back soon" in reason
    assert "Traceback" not in broken.log
    assert lookups(engine) == []  # not one outcome from a page the crawl cannot read
    assert not retry_skus(enrichment_inbox)
    assert site.stats()["by_kind"].get("product_page", 0) == 0  # no fallback to pages
    # The SKUs stayed in the inbox: the next night, with the API back, stores them all.
    site.configure(breaks=[])
    whole = run_crawl(url_of(engine), enrichment_inbox, site.url, *RETRIES)
    assert whole.returncode == 0, whole.log[-3000:]
    stored = {sku: outcome for sku, outcome, _ in lookups(engine)}
    assert stored == {str(p.sku): expected(p) for p in products}


def test_invalid_store_id_stops_the_crawl_naming_the_store(
    engine: Engine, site: ReplicaProcess, enrichment_inbox: Path
) -> None:
    """The site answers "Invalid StoreId" (bad user input, on each alias) for a store it
    does not know: asking again cannot help; the crawl stops as docs/site.md says."""
    products = of_kind("found", 6)
    site.configure(unknown_stores=[9999])
    write_jsonl(
        enrichment_inbox / "skus.jsonl",
        [{"sku": p.sku, "store_id": "9999"} for p in products],
    )
    result = run_crawl(url_of(engine), enrichment_inbox, site.url, *RETRIES)
    assert result.returncode == 4, result.log[-3000:]
    reason = result.stats["finish_reason"]
    assert reason.startswith("site_changed: GraphQL refused GetProductDetails (store 9999)")
    assert "Invalid StoreId: COL:9999" in reason
    assert {outcome for _, outcome, _ in lookups(engine)} <= {"failed"}
    assert retry_skus(enrichment_inbox) <= {str(p.sku) for p in products}
    assert max(site.stats()["by_sku_kind"]["graphql"].values()) == 1  # never asked again


def test_a_document_cut_off_halfway_is_split_until_only_its_sku_fails_and_the_run_is_distrusted(
    engine: Engine, site: ReplicaProcess, enrichment_inbox: Path
) -> None:
    """Any document asking for one SKU comes back as cut-off JSON: never an outcome. It is
    asked again, then split, until that SKU alone ends ``failed``; the crawl does not stop
    for one bad document. The run that saw unreadable answers is distrusted, so its SKUs
    without a barcode are asked again the next night."""
    broken = of_kind("found", 1)[0]
    products = [*of_kind("found", 20)[1:], *of_kind("no_barcode", 6), broken]
    site.configure(cut_off_skus=[broken.sku])
    write_jsonl(enrichment_inbox / "skus.jsonl", [{"sku": p.sku} for p in products])
    night = run_crawl(url_of(engine), enrichment_inbox, site.url, *RETRIES)
    assert night.returncode == 3, night.log[-3000:]  # its format error share fails the monitors
    assert not night.stats["finish_reason"].startswith("site_changed")
    stored = {sku: outcome for sku, outcome, _ in lookups(engine)}
    assert stored == {str(p.sku): "failed" if p is broken else expected(p) for p in products}
    assert retry_skus(enrichment_inbox) == {str(broken.sku)}
    assert night.stats["coles/answers_unreadable"] >= 3
    assert "the site answered unreadably" in night.log
    # The next night the site is whole: the no_barcode SKUs are asked again, not skipped.
    site.configure(cut_off_skus=[])
    site.reset_stats()
    for path in enrichment_inbox.glob("retry-*.jsonl"):
        path.unlink()
    write_jsonl(enrichment_inbox / "again.jsonl", [{"sku": p.sku} for p in products])
    again = run_crawl(url_of(engine), enrichment_inbox, site.url, *RETRIES)
    assert again.returncode == 0, again.log[-3000:]
    assert "prefill/recently_checked" not in again.stats
    asked = site.stats()["by_sku_kind"]["graphql"]
    no_barcode = {str(p.sku) for p in products if expected(p) == "no_barcode"}
    assert no_barcode | {str(broken.sku)} <= set(asked)
