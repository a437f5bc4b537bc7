"""The replica's product catalogue: deterministic fake products with realistic barcode trouble.

Tests and benchmarks need to know the answer the site will give for each SKU (which barcode, or
why none), so the catalogue is generated from a seed or read from a JSON-lines file, and each
product says what a correct loader should conclude (:attr:`ReplicaProduct.gtin_kind`,
:attr:`ReplicaProduct.expected_gtin`).
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .categories import CategoryNode, CategoryTree
from .gtin import MISSING, Gtin, GtinKind, classify, normalise, with_check_digit

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

__all__ = ["LEAF_CAPACITY", "Catalogue", "ProductStatus", "ReplicaProduct"]

ProductStatus = Literal["active", "unknown"]
"""``unknown``: in the catalogue file but delisted, so the site answers as for an unknown SKU."""

LEAF_CAPACITY = 48 * 104
"""Most products a generated leaf category holds: what one listing shows (48 rows x 104 pages)."""

FRESH_DEPARTMENTS = frozenset({"meat-seafood", "fruit-vegetables", "deli", "bakery"})

_BRANDS: dict[str, tuple[str, ...]] = {
    "meat-seafood": ("Coles Finest", "Primo", "Steggles", "Ingham's", "Lilydale", "Tassal"),
    "fruit-vegetables": ("Coles Nature's Kitchen", "Perfection Fresh", "Costa", "Zespri"),
    "dairy-eggs-fridge": ("Bega", "Devondale", "Dairy Farmers", "Chobani", "Jalna", "Mainland"),
    "bakery": ("Tip Top", "Helga's", "Abbott's Village Bakery", "Mission", "Bakers Life"),
    "deli": ("Coles Finest", "Primo", "Don", "Perfect Italiano", "Castello"),
    "pantry": (
        "Arnott's",
        "Kellogg's",
        "Uncle Tobys",
        "Sanitarium",
        "Heinz",
        "Campbell's",
        "Masterfoods",
        "Cadbury",
        "Nestle",
        "SPC",
        "Leggo's",
        "Continental",
        "Smith's",
        "Red Rock Deli",
        "SunRice",
        "San Remo",
        "A+ Hosan",
    ),
    "drinks": ("Coca-Cola", "Pepsi", "Schweppes", "Nudie", "Mount Franklin", "Gatorade", "Berri"),
    "frozen": ("McCain", "Birds Eye", "Streets", "Peters", "Sara Lee", "Four'N Twenty"),
    "household": ("Finish", "Morning Fresh", "Omo", "Sorbent", "Glad", "Pine O Cleen", "Harpic"),
    "health-beauty": ("Colgate", "Oral-B", "Dove", "Nivea", "Swisse", "Blackmores", "Sukin"),
    "baby": ("Huggies", "Babylove", "Rafferty's Garden", "Aptamil", "Bellamy's", "Johnson's"),
    "pet": ("Whiskas", "Pedigree", "Fancy Feast", "Schmackos", "Optimum", "Purina One"),
    "liquor": ("Victoria Bitter", "Coopers", "Hahn", "Yellow Tail", "Penfolds", "Smirnoff"),
    "tobacco": ("Winfield", "Peter Jackson", "Marlboro", "Longbeach"),
}
_HOUSE_BRAND = "Coles"
_NO_HOUSE_BRAND = frozenset({"liquor", "tobacco"})

_VARIANTS = (
    "Original",
    "Classic",
    "Light",
    "Organic",
    "Premium",
    "Family Pack",
    "Extra",
    "Natural",
    "Smooth",
    "Crunchy",
    "Lightly Salted",
    "Honey",
    "Lemon",
    "Garlic",
    "Chilli",
    "Vanilla",
    "Chocolate",
    "Sea Salt",
    "Wholegrain",
    "Reduced Fat",
    "No Added Sugar",
    "Free Range",
    "Gluten Free",
    "Mild",
    "Tasty",
    "Mini",
    "Sweet",
)

_GRAMS = (40, 90, 100, 120, 150, 170, 200, 250, 300, 375, 400, 420, 500, 600, 750)
_MILLILITRES = (250, 300, 330, 375, 500, 600, 700, 750)
_LITRES = ("1L", "1.25L", "1.5L", "2L", "3L")
_PACKS = ("1 each", "2 pack", "4 pack", "6 pack", "10 pack", "24 pack")
_SIZE_STYLE: dict[str, str] = {
    "drinks": "liquid",
    "liquor": "liquid",
    "dairy-eggs-fridge": "mixed",
    "household": "packs",
    "health-beauty": "packs",
    "baby": "packs",
    "pet": "mixed",
    "tobacco": "packs",
}
# Prefixes of imported goods (US/Canada, UK, Germany, Korea, China, NZ, Switzerland, Italy).
_IMPORT_PREFIXES = ("00", "01", "03", "06", "50", "40", "880", "690", "94", "76", "80")


@dataclass(frozen=True, slots=True)
class ReplicaProduct:
    """One product of the replica site; ``gtin`` is exactly what its GraphQL record carries."""

    sku: int
    name: str
    brand: str
    size: str
    price: float
    gtin: Gtin = MISSING
    status: ProductStatus = "active"
    category: str = ""
    was: float = 0.0
    weighted: bool = False

    @property
    def gtin_kind(self) -> GtinKind:
        """What kind of barcode value the site sends for this product."""
        return classify(self.gtin)

    @property
    def expected_gtin(self) -> str | None:
        """The 13-digit GTIN a correct loader stores (``None``: no usable barcode, or delisted)."""
        return normalise(self.gtin) if self.status == "active" else None

    @property
    def slug(self) -> str:
        """The product page slug without the SKU (``/product/{slug}-{sku}``)."""
        text = f"{self.brand} {self.name} {self.size}".lower()
        return re.sub(r"[^a-z0-9+]+", "-", text).strip("-")

    @property
    def url_path(self) -> str:
        """``/product/{slug}-{sku}``."""
        return f"/product/{self.slug}-{self.sku}"

    def to_json(self) -> dict[str, Any]:
        """The JSON-lines record :meth:`Catalogue.from_jsonl` reads back (no key when MISSING)."""
        record: dict[str, Any] = {
            "sku": self.sku,
            "name": self.name,
            "brand": self.brand,
            "size": self.size,
            "price": self.price,
        }
        if self.gtin is not MISSING:
            record["gtin"] = self.gtin
        record["unknown"] = self.status == "unknown"
        record["category"] = self.category
        if self.was:
            record["was"] = self.was
        if self.weighted:
            record["weighted"] = True
        return record


class Catalogue:
    """Products by SKU plus the category tree they are listed under."""

    def __init__(self, products: Iterable[ReplicaProduct], tree: CategoryTree | None = None):
        self.tree = tree if tree is not None else CategoryTree.default()
        self.products: dict[int, ReplicaProduct] = {}
        for product in products:
            if product.sku in self.products:
                raise ValueError(f"duplicate SKU {product.sku}")
            self.products[product.sku] = product
        self._leaves = self.tree.leaves()
        self._listing: dict[str, list[ReplicaProduct]] = {}
        self._index()

    def _index(self) -> None:
        listing: dict[str, list[ReplicaProduct]] = {}
        for product in sorted(self.products.values(), key=lambda p: p.sku):
            if product.status != "active":
                continue
            node = self.category_of(product)
            for ancestor in self.tree.lineage(node.path):
                listing.setdefault(ancestor.path, []).append(product)
            if product.was and product.sku % 4 == 0 and "down-down" in self.tree.by_path:
                listing.setdefault("down-down", []).append(product)
            if product.sku % 31 == 0 and "bonus-prize-entries" in self.tree.by_path:
                listing.setdefault("bonus-prize-entries", []).append(product)
        self._listing = listing

    def __len__(self) -> int:
        return len(self.products)

    def __iter__(self) -> Iterator[ReplicaProduct]:
        return iter(self.products.values())

    def __contains__(self, sku: object) -> bool:
        return sku in self.products

    def get(self, sku: int) -> ReplicaProduct | None:
        """The product with this SKU, delisted or not."""
        return self.products.get(sku)

    def active(self, sku: int) -> ReplicaProduct | None:
        """The product if the site knows it (``None`` for unknown and delisted SKUs)."""
        product = self.products.get(sku)
        return product if product is not None and product.status == "active" else None

    def category_of(self, product: ReplicaProduct) -> CategoryNode:
        """The leaf category a product is listed under."""
        leaves = self._leaves
        return self.tree.ensure(product.category or leaves[product.sku % len(leaves)].path)

    def in_category(self, path: str) -> list[ReplicaProduct]:
        """Active products listed under ``path`` (and its sub-categories), by SKU."""
        return self._listing.get(path.strip("/"), [])

    @classmethod
    def generate(
        cls,
        n: int,
        seed: int = 1,
        start_sku: int = 1_000_000,
        no_barcode_share: float = 0.1,
        bad_gtin_share: float = 0.02,
        number_gtin_share: float = 0.02,
        instore_share: float = 0.4,
        internal_share: float = 0.005,
        import_share: float = 0.25,
        delisted_share: float = 0.01,
        special_share: float = 0.1,
    ) -> Catalogue:
        """``n`` products with consecutive SKUs from ``start_sku``; same arguments, same catalogue.

        No leaf category gets more than :data:`LEAF_CAPACITY` products (48 rows x 104 pages),
        so that, as on the real site, walking the sub-categories lists every product whatever
        ``n`` (a replica run with smaller ``listing_page_size``/``listing_max_pages`` lowers
        the cap: keep ``n`` small enough there).

        Barcodes are valid EAN-13s (Australian prefix 93, imports, and in-store 02/2x codes in
        fresh departments) except for the shares asked for: no barcode (split evenly between a
        missing key, null and ""), invalid codes, and valid codes sent as JSON numbers.
        """
        rng = random.Random(seed)
        tree = CategoryTree.default()
        leaves = tree.leaves()
        if n > len(leaves) * LEAF_CAPACITY:
            raise ValueError(f"at most {len(leaves) * LEAF_CAPACITY:,} products fit the tree")
        cum_weights = list(accumulate(max(leaf.weight, 1) for leaf in leaves))
        used: set[str] = set()
        filled: dict[str, int] = {}
        products = []
        for i in range(n):
            leaf = rng.choices(leaves, cum_weights=cum_weights)[0]
            while filled.get(leaf.path, 0) >= LEAF_CAPACITY:  # full: listing it would stop short
                leaf = rng.choices(leaves, cum_weights=cum_weights)[0]
            filled[leaf.path] = filled.get(leaf.path, 0) + 1
            department = leaf.department
            fresh = department in FRESH_DEPARTMENTS
            weighted = fresh and rng.random() < 0.15
            brand = _pick_brand(rng, department)
            name = f"{rng.choice(_VARIANTS)} {leaf.name}"
            size = _pick_size(rng, department, weighted)
            price = round(rng.randint(10, 400) * 0.1, 2)
            was = round(price * 1.25, 1) if rng.random() < special_share else 0.0
            code = _pick_code(rng, used, fresh, instore_share, internal_share, import_share)
            gtin = _flaw(rng, code, no_barcode_share, bad_gtin_share, number_gtin_share)
            status: ProductStatus = "unknown" if rng.random() < delisted_share else "active"
            products.append(
                ReplicaProduct(
                    sku=start_sku + i,
                    name=name,
                    brand=brand,
                    size=size,
                    price=price,
                    gtin=gtin,
                    status=status,
                    category=leaf.path,
                    was=was,
                    weighted=weighted,
                )
            )
        return cls(products, tree)

    @classmethod
    def from_jsonl(cls, path: str | Path) -> Catalogue:
        """Read lines like ``{"sku", "name", "brand", "size", "price", "gtin", "unknown"}``.

        ``gtin`` may be absent, null, "", a number or any string; ``category`` (a listing path
        such as ``pantry/cereal``) is optional and unknown paths are added to the tree.
        """
        products = []
        with Path(path).open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    raw = json.loads(line)
                    products.append(_product_from_json(raw))
                except (ValueError, KeyError, TypeError) as exc:
                    raise ValueError(f"{path}:{number}: bad catalogue line: {exc}") from exc
        return cls(products)

    def to_jsonl(self, path: str | Path) -> None:
        """Write the catalogue in the format :meth:`from_jsonl` reads."""
        with Path(path).open("w", encoding="utf-8") as out:
            for product in self.products.values():
                out.write(json.dumps(product.to_json()) + "\n")


def _product_from_json(raw: dict[str, Any]) -> ReplicaProduct:
    gtin: Gtin = raw.get("gtin", MISSING)
    if gtin is not MISSING and (
        isinstance(gtin, bool) or not isinstance(gtin, (str, int, type(None)))
    ):
        gtin = str(gtin)  # a float or a list: keep it, as text, for the loader to reject
    return ReplicaProduct(
        sku=int(raw["sku"]),
        name=str(raw.get("name") or f"Product {raw['sku']}"),
        brand=str(raw.get("brand") or _HOUSE_BRAND),
        size=str(raw.get("size") or "1 each"),
        price=float(raw.get("price") or 0.0),
        gtin=gtin,
        status="unknown" if raw.get("unknown") else "active",
        category=str(raw.get("category") or "").strip("/"),
        was=float(raw.get("was") or 0.0),
        weighted=bool(raw.get("weighted", False)),
    )


def _pick_brand(rng: random.Random, department: str) -> str:
    if department not in _NO_HOUSE_BRAND and rng.random() < 0.25:
        return _HOUSE_BRAND
    return rng.choice(_BRANDS.get(department, (_HOUSE_BRAND,)))


def _pick_size(rng: random.Random, department: str, weighted: bool) -> str:
    if weighted:
        return f"approx. {rng.choice((150, 200, 250, 500, 750))}g"
    style = _SIZE_STYLE.get(department, "grams")
    if style == "mixed":
        style = rng.choice(("grams", "liquid"))
    if style == "packs" and rng.random() < 0.5:
        style = rng.choice(("grams", "liquid"))
    if style == "liquid":
        return rng.choice(_LITRES) if rng.random() < 0.3 else f"{rng.choice(_MILLILITRES)}mL"
    if style == "packs":
        return rng.choice(_PACKS)
    return "1kg" if rng.random() < 0.08 else f"{rng.choice(_GRAMS)}g"


def _pick_code(
    rng: random.Random,
    used: set[str],
    fresh: bool,
    instore_share: float,
    internal_share: float,
    import_share: float,
) -> str:
    """A valid EAN-13 not handed out before."""
    while True:
        roll = rng.random()
        if fresh and roll < instore_share:
            prefix = rng.choice(("02", "20", "21", "22", "23", "24", "25", "26", "27", "28", "29"))
        elif roll < internal_share:
            prefix = "04"
        elif rng.random() < import_share:
            prefix = rng.choice(_IMPORT_PREFIXES)
        else:
            prefix = "93"
        body = prefix + "".join(str(rng.randrange(10)) for _ in range(12 - len(prefix)))
        code = with_check_digit(body)
        if code not in used:
            used.add(code)
            return code


def _flaw(rng: random.Random, code: str, no_barcode: float, bad: float, number: float) -> Gtin:
    """Turn a good code into what the site sends: mostly itself, sometimes trouble."""
    roll = rng.random()
    if roll < no_barcode:
        return rng.choice((MISSING, None, ""))
    roll -= no_barcode
    if roll < bad:
        mode = rng.randrange(4)
        if mode == 0:  # wrong check digit
            return code[:-1] + str((int(code[-1]) + rng.randint(1, 9)) % 10)
        if mode == 1:  # one digit short (and not accidentally valid)
            short = code[1:]
            return (
                short if normalise(short) is None else short[:-1] + str((int(short[-1]) + 1) % 10)
            )
        if mode == 2:  # letters
            return code[:7] + "ABCDEF"[rng.randrange(6)] + code[8:]
        return code + str(rng.randrange(10)) + "0"  # 15 digits
    roll -= bad
    if roll < number:
        return int(code)
    return code
