"""The replica's listings stay complete and bounded whatever the catalogue size."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from colesbarcodes.replica import catalogue as catalogue_module
from colesbarcodes.replica import server as server_module
from colesbarcodes.replica.catalogue import LEAF_CAPACITY, Catalogue
from colesbarcodes.replica.server import ReplicaSite

if TYPE_CHECKING:
    from colesbarcodes.replica.categories import CategoryTree


def largest_leaf(catalogue: Catalogue) -> int:
    tree: CategoryTree = catalogue.tree
    return max(len(catalogue.in_category(leaf.path)) for leaf in tree.leaves())


def test_generated_aisles_never_hold_more_than_one_listing_shows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At 30,000 products a store no aisle comes near 48 x 104; at some 250,000 the
    busiest ones would pass it, and walking the sub-categories could no longer list all."""
    assert LEAF_CAPACITY == 48 * 104
    monkeypatch.setattr(catalogue_module, "LEAF_CAPACITY", 2)  # the same rule, made small
    catalogue = Catalogue.generate(1500, seed=5)
    assert largest_leaf(catalogue) <= 2
    again = Catalogue.generate(1500, seed=5)
    assert [p.to_json() for p in again] == [p.to_json() for p in catalogue]
    leaves = len(catalogue.tree.leaves())
    with pytest.raises(ValueError, match="fit the tree"):
        Catalogue.generate(2 * leaves + 1)


def test_catalogues_below_the_cap_are_what_they_always_were(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    capped = [p.to_json() for p in Catalogue.generate(3000, seed=9)]
    monkeypatch.setattr(catalogue_module, "LEAF_CAPACITY", 10**9)
    assert [p.to_json() for p in Catalogue.generate(3000, seed=9)] == capped


def test_the_listing_cache_stays_within_its_byte_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_module, "LISTING_CACHE_BYTES", 50_000)
    site = ReplicaSite(Catalogue.generate(50, seed=2))
    for page in range(1, 101):
        site._cache_listing(("pantry", page, 48, 104, "http://x"), b"x" * 20_000)
    assert site._listing_cache_bytes <= 50_000
    assert list(site._listing_cache) == [
        ("pantry", 99, 48, 104, "http://x"),
        ("pantry", 100, 48, 104, "http://x"),
    ]
