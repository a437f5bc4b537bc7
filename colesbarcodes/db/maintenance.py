"""Post-processing: reconciliation of older data and product-group maintenance.

Both are idempotent: a second run right after the first changes nothing.

*Reconciliation* repairs rows written by older tools or older versions: barcodes not in
canonical GTIN form and SKUs not in canonical form. Where the canonical form shows two
products to be one (same barcode, or the same company SKU), they are merged, preferring
the product that has a barcode, and the merge is recorded.

*Groups* link products of different companies that have no barcode link but the same
normalised brand, name and size. A group whose members hold different global barcodes is
contradicted and removed, as is one left with fewer than two companies.
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, insert, select, update

from colesbarcodes.db.catalog import merge_products
from colesbarcodes.db.models import (
    CompanySku,
    PriceHistory,
    Product,
    ProductGroup,
    ProductGroupMember,
    StorePrice,
)
from colesbarcodes.gtin import InvalidGtin, parse_gtin
from colesbarcodes.inbox.lines import LineError, normalize_sku

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

__all__ = ["GroupStats", "ReconcileStats", "group_key", "maintain_groups", "reconcile"]


@dataclass
class ReconcileStats:
    barcodes_normalized: int = 0
    barcodes_invalid: int = 0
    skus_normalized: int = 0
    merges: int = 0


@dataclass
class GroupStats:
    groups: int = 0
    created: int = 0
    removed: int = 0
    members_added: int = 0
    members_removed: int = 0


def _survivor(session: Session, a: int, b: int) -> tuple[int, int]:
    """(survivor, merged): prefer the product with a barcode, then the older row."""
    rows = dict(
        session.execute(select(Product.id, Product.barcode).where(Product.id.in_((a, b)))).all()
    )
    if bool(rows.get(a)) != bool(rows.get(b)):
        return (a, b) if rows.get(a) else (b, a)
    return (min(a, b), max(a, b))


def _canonical_barcodes(session: Session, stats: ReconcileStats) -> None:
    rows = session.execute(
        select(Product.id, Product.barcode).where(
            Product.barcode.is_not(None),
            (Product.barcode_scope.is_(None)) | (func.length(Product.barcode) != 13),
        )
    ).all()
    for product_id, barcode in rows:
        try:
            gtin = parse_gtin(barcode)
        except InvalidGtin:
            stats.barcodes_invalid += 1
            continue
        if gtin is None:
            continue
        holder = session.scalar(
            select(Product.id).where(Product.barcode == gtin.code, Product.id != product_id)
        )
        if holder is not None and gtin.is_global:
            survivor, merged = _survivor(session, holder, product_id)
            if merged == holder:
                session.execute(update(Product).where(Product.id == holder).values(barcode=None))
            merge_products(
                session, merged, survivor, reason=f"same barcode {gtin.code}", source="reconcile"
            )
            stats.merges += 1
            if survivor == product_id:
                session.execute(
                    update(Product)
                    .where(Product.id == product_id)
                    .values(barcode=gtin.code, barcode_scope=gtin.scope.value)
                )
            stats.barcodes_normalized += 1
        elif holder is None:
            session.execute(
                update(Product)
                .where(Product.id == product_id)
                .values(barcode=gtin.code, barcode_scope=gtin.scope.value)
            )
            if gtin.code != barcode:
                stats.barcodes_normalized += 1


def _move_sku_rows(session: Session, from_pk: int, to_pk: int) -> None:
    """Fold one SKU row into its canonical twin: prices (newest wins) and history move."""
    session.execute(update(PriceHistory).where(PriceHistory.sku_pk == from_pk).values(sku_pk=to_pk))
    for price in session.scalars(select(StorePrice).where(StorePrice.sku_pk == from_pk)).all():
        twin = session.scalar(
            select(StorePrice).where(
                StorePrice.sku_pk == to_pk, StorePrice.store_pk == price.store_pk
            )
        )
        if twin is None:
            price.sku_pk = to_pk
        else:
            if price.last_seen > twin.last_seen:
                for attr in ("price", "was_price", "unit_price", "available", "url", "last_seen"):
                    setattr(twin, attr, getattr(price, attr))
            session.delete(price)
    session.flush()
    session.execute(delete(CompanySku).where(CompanySku.id == from_pk))


def _canonical_skus(session: Session, stats: ReconcileStats) -> None:
    rows = session.execute(
        select(CompanySku.id, CompanySku.company, CompanySku.sku, CompanySku.product_id).where(
            (CompanySku.sku != func.trim(CompanySku.sku))
            | ((CompanySku.company == "coles") & CompanySku.sku.like("0%"))
        )
    ).all()
    for pk, company, sku, product_id in rows:
        try:
            canonical = normalize_sku(company, sku)
        except LineError:
            continue
        if canonical == sku:
            continue
        twin = session.execute(
            select(CompanySku.id, CompanySku.product_id).where(
                CompanySku.company == company, CompanySku.sku == canonical
            )
        ).first()
        stats.skus_normalized += 1
        if twin is None:
            session.execute(update(CompanySku).where(CompanySku.id == pk).values(sku=canonical))
            continue
        if twin.product_id != product_id:
            survivor, merged = _survivor(session, twin.product_id, product_id)
            merge_products(
                session,
                merged,
                survivor,
                reason=f"same {company} sku {canonical}",
                source="reconcile",
            )
            stats.merges += 1
        _move_sku_rows(session, pk, twin.id)


def reconcile(session: Session) -> ReconcileStats:
    stats = ReconcileStats()
    _canonical_skus(session, stats)
    _canonical_barcodes(session, stats)
    return stats


_NON_WORD = re.compile(r"[^0-9a-z]+")
_MAX_KEY = 1000  # product_groups.key
_SIZE_UNITS = re.compile(r"(\d)\s+(?=[a-z])")


@functools.lru_cache(maxsize=1 << 16)  # brands and sizes repeat across products
def _normalized(text: str) -> str:
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = _SIZE_UNITS.sub(r"\1", text.lower())
    return _NON_WORD.sub(" ", text).strip()


def group_key(brand: str | None, name: str | None, size: str | None) -> str | None:
    """brand|name|size, case-, accent- and punctuation-insensitive ("150 G" == "150g")."""
    if not name:
        return None
    key = "|".join(
        (_normalized(brand) if brand else "", _normalized(name), _normalized(size) if size else "")
    )
    if len(key) > _MAX_KEY:  # still one key per brand, name and size: the hash tells apart
        digest = hashlib.blake2s(key.encode(), digest_size=8).hexdigest()
        key = f"{key[: _MAX_KEY - len(digest) - 1]}#{digest}"
    return key


def _is_global(barcode: str | None, scope: str | None) -> bool:
    if barcode is None or scope is not None:
        return scope == "global"
    try:  # a row from older data without a scope: judge the code itself
        gtin = parse_gtin(barcode)
    except InvalidGtin:
        return False
    return gtin is not None and gtin.is_global


def _several_companies(session: Session) -> bool:
    """Whether SKUs of two companies or more are stored: the first company, then any after
    it, each one descent of the (company, sku) index. (``DISTINCT .. LIMIT 2`` reads every
    SKU when there is one company: 13 ms for 30,000 of them, measured.)"""
    first = session.scalar(select(CompanySku.company).order_by(CompanySku.company).limit(1))
    if first is None:
        return False
    after = (
        select(CompanySku.company)
        .where(CompanySku.company > first)
        .order_by(CompanySku.company)
        .limit(1)
    )
    return session.scalar(after) is not None


def maintain_groups(session: Session) -> GroupStats:
    companies: dict[int, set[str]] = defaultdict(set)
    members: dict[str, list[tuple[int, str | None, bool]]] = defaultdict(list)
    # A group spans two companies at least: with one company in the database there is none
    # to look for, only stale groups to remove (and the products are not read at all).
    several = _several_companies(session)
    if several:
        for product_id, company in session.execute(
            select(CompanySku.product_id, CompanySku.company).distinct()
        ):
            companies[product_id].add(company)
    rows = (
        session.execute(
            select(
                Product.id,
                Product.brand,
                Product.name,
                Product.size,
                Product.barcode,
                Product.barcode_scope,
            )
        )
        if several
        else ()
    )
    for product_id, brand, name, size, barcode, scope in rows:
        key = group_key(brand, name, size)
        if key is not None:
            members[key].append((product_id, barcode, _is_global(barcode, scope)))
    desired: dict[str, set[int]] = {}
    for key, products in members.items():
        if len(products) < 2:
            continue
        spanned = set().union(*(companies.get(pid, set()) for pid, _, _ in products))
        global_codes = {code for _, code, is_global in products if code and is_global}
        if len(spanned) >= 2 and len(global_codes) <= 1:
            desired[key] = {pid for pid, _, _ in products}

    stats = GroupStats(groups=len(desired))
    existing = dict(session.execute(select(ProductGroup.key, ProductGroup.id)).all())
    current: dict[int, set[int]] = defaultdict(set)
    for group_id, product_id in session.execute(
        select(ProductGroupMember.group_id, ProductGroupMember.product_id)
    ):
        current[group_id].add(product_id)
    stale = [gid for key, gid in existing.items() if key not in desired]
    if stale:
        session.execute(delete(ProductGroupMember).where(ProductGroupMember.group_id.in_(stale)))
        session.execute(delete(ProductGroup).where(ProductGroup.id.in_(stale)))
        stats.removed = len(stale)
    for key, wanted in sorted(desired.items()):
        known = existing.get(key)
        if known is not None:
            group_id = known
        else:
            group_id = session.execute(
                insert(ProductGroup).values(key=key).returning(ProductGroup.id)
            ).scalar_one()
            stats.created += 1
        have = current.get(group_id, set())
        gone = have - wanted
        if gone:
            session.execute(
                delete(ProductGroupMember).where(
                    ProductGroupMember.group_id == group_id, ProductGroupMember.product_id.in_(gone)
                )
            )
            stats.members_removed += len(gone)
        added = sorted(wanted - have)
        if added:
            # A product belongs to one group: take it out of any other group first.
            session.execute(
                delete(ProductGroupMember).where(ProductGroupMember.product_id.in_(added))
            )
            session.execute(
                insert(ProductGroupMember),
                [{"group_id": group_id, "product_id": pid} for pid in added],
            )
            stats.members_added += len(added)
    return stats
