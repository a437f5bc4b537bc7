"""Woolworths as the replica serves it: the same process as the Coles replica, under the path
prefix ``/woolworths`` (a crawl reaches it with ``WOOLWORTHS_BASE_URL={replica}/woolworths``).

Shapes from ``../shared/samples/woolworths_listing_category_1.json`` (real, 2024; every row is
a copy of its first row with the product's own values, ``templates/woolworths_listing.json``)
and the public clients of 2025-10 to 2026-10 (``../shared`` README, "Woolworths in 2026"):

- ``GET /``: the home page; sets the cookies a client primes (``bm_sz``, ``_abck``) and says
  "akamai" in a harmless place, as good pages do.
- ``GET /apis/ui/PiesCategoriesWithSpecials``: ``{"Categories": [...]}``: the root
  ``specialsgroup`` (``IsSpecial``), the departments (``ParentNodeId`` ``1-4A3B264C``), each with
  a ``<NodeId>_SPECIALS`` child; Everyday Market ``1_A363395`` (third-party sellers only) and
  Front of Store (whose listing errors, as on the real site).
- ``POST /apis/ui/browse/category``: the JSON body public clients send; pages of ``pageSize``
  rows (more than 36: 400) sorted by name, two sponsored copies (``IsSponsoredAd``) on top of
  every page, and past the last page only those; marketplace rows (``IsMarketProduct``) among
  a department's rows unless ``isHideEverydayMarketProducts``. An unknown ``categoryId`` (a
  slug, say) answers 200 with no products. A department in ``fail_departments`` answers 500.
- Akamai's block, on demand: a 403 of about 400 bytes ("Access Denied", "Reference #18...")
  for everything when ``blocked``, or for the client addresses in ``block_clients``.
- ``GET|POST /__replica__/config``, ``GET /__replica__/stats``, ``POST
  /__replica__/reset-stats`` (under the prefix): this site's own switches and counts.

Products: derived from the Coles replica's catalogue, so that a comparison has pairs: a
share of the Coles products with a global GTIN are sold here under a Woolworths stockcode
with the same barcode; fresh products carry in-store codes (``02...``) of their own; some
have no barcode. Stockcodes are not Coles SKUs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import secrets
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .gtin import normalise, with_check_digit
from .pages import dumps

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from .catalogue import Catalogue

__all__ = [
    "DEPARTMENTS",
    "EVERYDAY_MARKET",
    "FRONT_OF_STORE",
    "PREFIX",
    "WoolworthsCatalogue",
    "WoolworthsConfig",
    "WoolworthsProduct",
    "WoolworthsSite",
    "make_app",
]

PREFIX = "/woolworths"
ROOT_PARENT = "1-4A3B264C"
EVERYDAY_MARKET = "1_A363395"
FRONT_OF_STORE = "1_B4DF2A3"
MAX_PAGE_SIZE = 36
MAX_SERVED = 10_000
SPONSORED_PER_PAGE = 2

# (NodeId, Description, UrlFriendlyName, the Coles replica departments sold there)
DEPARTMENTS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("1-E5BEE36E", "Fruit & Veg", "fruit-veg", ("fruit-vegetables",)),
    ("1_D5A2236", "Meat, Seafood & Deli", "meat-seafood-deli", ("meat-seafood", "deli")),
    ("1_DEB537E", "Bakery", "bakery", ("bakery",)),
    ("1_6E4F4E4", "Dairy, Eggs & Fridge", "dairy-eggs-fridge", ("dairy-eggs-fridge",)),
    ("1_39FD49C", "Pantry", "pantry", ("pantry",)),
    ("1_ACA2FC2", "Freezer", "freezer", ("frozen",)),
    ("1_5AF3A0A", "Drinks", "drinks", ("drinks",)),
    ("1_8E4DA6F", "Liquor", "liquor", ("liquor",)),
    ("1_2432B58", "Cleaning & Maintenance", "cleaning-maintenance", ("household",)),
    ("1_894D0A8", "Beauty & Personal Care", "beauty-personal-care", ("health-beauty",)),
    ("1_717445A", "Baby", "baby", ("baby",)),
    ("1_61D6FEB", "Pet", "pet", ("pet",)),
    (EVERYDAY_MARKET, "Everyday Market", "everyday-market", ()),
    (FRONT_OF_STORE, "Front of Store", "front-of-store", ()),
)
FRESH = frozenset({"fruit-vegetables", "meat-seafood", "deli", "bakery"})

_TEMPLATE = json.loads(
    resources.files(__package__).joinpath("templates", "woolworths_listing.json").read_text()
)
_ROW: dict[str, Any] = _TEMPLATE["row"]
_ANSWER: dict[str, Any] = _TEMPLATE["answer"]
_SLUG = re.compile(r"[^a-z0-9]+")

BLOCK_PAGE = (
    "<HTML><HEAD>\n<TITLE>Access Denied</TITLE>\n</HEAD><BODY>\n<H1>Access Denied</H1>\n \n"
    "You don't have permission to access \"http&#58;&#47;&#47;www&#46;woolworths&#46;com&#46;au"
    '&#47;apis&#47;ui&#47;browse&#47;category" on this server.<P>\n'
    "Reference&#32;&#35;18&#46;{ref}\n"
    "<P>https&#58;&#47;&#47;errors&#46;edgesuite&#46;net&#47;18&#46;{ref}</P>\n"
    "</BODY>\n</HTML>\n"
)
HOME_PAGE = (
    '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Woolworths Supermarket'
    ' - Buy Groceries Online</title><link rel="preconnect" href="https://assets.woolworths.'
    'com.au.akamaized.net"></head><body><wow-root>Woolworths online</wow-root></body></html>'
)


@dataclass(frozen=True, slots=True)
class WoolworthsProduct:
    """One row Woolworths lists; ``barcode`` is exactly what the row carries."""

    stockcode: int
    name: str
    brand: str | None
    size: str
    price: float
    department: str  # NodeId
    barcode: str | None = None
    was: float = 0.0
    in_stock: bool = True
    marketplace: bool = False
    coles_sku: int | None = None  # the Coles replica product with the same GTIN

    @property
    def slug(self) -> str:
        return _SLUG.sub("-", f"{self.brand or ''} {self.name} {self.size}".lower()).strip("-")


class WoolworthsCatalogue:
    """Woolworths' products, derived from the Coles replica's catalogue (same seed, same
    products), by department, sorted by name as ``sortType: Name`` lists them."""

    def __init__(self, products: list[WoolworthsProduct]) -> None:
        self.products = {p.stockcode: p for p in products}
        self.by_department: dict[str, list[WoolworthsProduct]] = defaultdict(list)
        for product in sorted(products, key=lambda p: (p.name, p.stockcode)):
            self.by_department[product.department].append(product)

    @classmethod
    def from_coles(cls, coles: Catalogue) -> WoolworthsCatalogue:
        """Every other Coles product with a global GTIN, sold here with that GTIN; fresh
        products (one in three) with an in-store code of their own; one in seven of the rest
        with no barcode; and one marketplace row for every ten shelf rows."""
        department_of = {
            coles_department: node_id
            for node_id, _, _, coles_departments in DEPARTMENTS
            for coles_department in coles_departments
        }
        products: list[WoolworthsProduct] = []
        stockcode = 100_000
        for product in sorted(coles, key=lambda p: p.sku):
            if product.status != "active":
                continue
            coles_department = coles.category_of(product).department
            department = department_of.get(coles_department)
            if department is None:
                continue
            code = normalise(product.gtin)
            global_code = code is not None and not code.startswith(("02", "2"))
            barcode: str | None
            if global_code and product.sku % 2 == 0:
                barcode, shared = code, product.sku
            elif coles_department in FRESH and product.sku % 3 == 0:
                barcode, shared = with_check_digit(f"02{stockcode % 100_000:05d}00000"), None
            elif product.sku % 7 == 0:
                barcode, shared = None, None
            else:
                continue
            stockcode += 1
            price = round(product.price * (0.85 + (product.sku % 7) * 0.05), 2)
            products.append(
                WoolworthsProduct(
                    stockcode=stockcode,
                    name=f"{product.brand} {product.name}",
                    brand=product.brand if product.sku % 3 else None,  # often null
                    size=product.size,
                    price=price,
                    department=department,
                    barcode=barcode,
                    was=round(price * 1.2, 2) if product.sku % 9 == 0 else 0.0,
                    in_stock=product.sku % 11 != 0,
                    coles_sku=shared,
                )
            )
        shelf = list(products)
        for number, sold in enumerate(shelf):
            if number % 10 == 5:
                stockcode += 1
                products.append(
                    dataclasses.replace(
                        sold,
                        stockcode=stockcode,
                        name=f"{sold.name} (Marketplace)",
                        barcode=None,
                        marketplace=True,
                        coles_sku=None,
                    )
                )
        for number, sold in enumerate(shelf[:40]):  # Everyday Market: sellers only
            stockcode += 1
            products.append(
                dataclasses.replace(
                    sold,
                    stockcode=stockcode,
                    department=EVERYDAY_MARKET,
                    name=f"Seller {number} {sold.name}",
                    barcode=None,
                    marketplace=True,
                    coles_sku=None,
                )
            )
        return cls(products)

    def shelf(self, department: str) -> list[WoolworthsProduct]:
        """What a full listing of ``department`` shows with marketplace rows hidden."""
        return [p for p in self.by_department.get(department, []) if not p.marketplace]


def product_row(product: WoolworthsProduct, sponsored: bool = False) -> dict[str, Any]:
    """The listing row of ``product``: the real sample's row with this product's values."""
    row = dict(_ROW)
    price, was = product.price, product.was or product.price
    images = f"https://cdn0.woolworths.media/content/wowproductimages/{{}}/{product.stockcode}.jpg"
    row.update(
        {
            "Stockcode": product.stockcode,
            "Barcode": product.barcode,
            "GtinFormat": 13 if product.barcode else 0,
            "Name": product.name,
            "DisplayName": f"{product.name} {product.size}",
            "UrlFriendlyName": product.slug,
            "Description": f"  {product.name}  {product.size}",
            "SmallImageFile": images.format("small"),
            "MediumImageFile": images.format("medium"),
            "LargeImageFile": images.format("large"),
            "PackageSize": product.size,
            "Brand": product.brand,
            "Price": price,
            "InstorePrice": price,
            "WasPrice": was,
            "InstoreWasPrice": was,
            "IsOnSpecial": was > price,
            "InstoreIsOnSpecial": was > price,
            "SavingsAmount": round(was - price, 2),
            "CupPrice": price,
            "InstoreCupPrice": price,
            "CupMeasure": "1EA",
            "CupString": f"${price:.2f} / 1EA",
            "InstoreCupString": f"${price:.2f} / 1EA",
            "IsInStock": product.in_stock,
            "IsAvailable": product.in_stock,
            "InstoreIsAvailable": product.in_stock,
            "IsPurchasable": product.in_stock,
            "IsMarketProduct": product.marketplace,
            "IsSponsoredAd": sponsored,
            "AdStatus": "Promoted" if sponsored else None,
            "AdID": f"ad-{product.stockcode}" if sponsored else None,
        }
    )
    return row


@dataclass
class WoolworthsConfig:
    """This site's switches (``/woolworths/__replica__/config``)."""

    blocked: bool = False  # Akamai's 403 for every client
    block_clients: list[str] = field(default_factory=list)  # Akamai's 403 for these addresses
    fail_departments: list[str] = field(default_factory=lambda: [FRONT_OF_STORE])  # 500 always
    delay_ms: float = 0.0  # added to every answer but the control routes

    def update(self, changes: Mapping[str, Any]) -> None:
        """Apply ``changes`` (JSON values), checking names and types; all or nothing."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ValueError(f"unknown config fields: {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for name, value in changes.items():
            if name == "blocked":
                if not isinstance(value, bool):
                    raise ValueError("blocked: expected true or false")
                values[name] = value
            elif name == "delay_ms":
                if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                    raise ValueError("delay_ms: expected a number of 0 or more")
                values[name] = float(value)
            else:
                items = [value] if isinstance(value, str) else value
                if not isinstance(items, list):
                    raise ValueError(f"{name}: expected a list")
                values[name] = [s.strip() for v in items for s in str(v).split(",") if s.strip()]
        for name, value in values.items():
            setattr(self, name, value)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class WoolworthsSite:
    """Handlers plus their state: the catalogue, the switches and the request counts."""

    def __init__(self, catalogue: WoolworthsCatalogue, config: WoolworthsConfig | None = None):
        self.catalogue = catalogue
        self.config = config if config is not None else WoolworthsConfig()
        self._pages: dict[tuple[str, int, int, bool], bytes] = {}
        self.reset_stats()

    def reset_stats(self) -> None:
        self.by_kind: Counter[str] = Counter()
        self.by_status: Counter[int] = Counter()
        self.by_client: Counter[str] = Counter()
        self.listings: defaultdict[str, Counter[int]] = defaultdict(Counter)
        self.page_sizes: Counter[int] = Counter()
        self.hide_marketplace: Counter[str] = Counter()
        self.with_cookie = 0  # listing requests carrying the home page's cookie
        self.from_site = 0  # listing requests with the site's Origin and Accept: JSON
        self.blocked = 0

    def stats(self) -> dict[str, Any]:
        return {
            "by_kind": dict(self.by_kind),
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "by_client": dict(self.by_client),
            "listings": {
                node: {str(k): v for k, v in sorted(pages.items())}
                for node, pages in self.listings.items()
            },
            "page_sizes": {str(k): v for k, v in self.page_sizes.items()},
            "hide_marketplace": dict(self.hide_marketplace),
            "with_cookie": self.with_cookie,
            "from_site": self.from_site,
            "blocked": self.blocked,
        }

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024)
        add = app.router.add_route
        add("GET", "/", self.home, name="ww_home")
        add("GET", "/apis/ui/PiesCategoriesWithSpecials", self.categories, name="ww_categories")
        add("POST", "/apis/ui/browse/category", self.listing, name="ww_listing")
        add("GET", "/__replica__/config", self.get_config)
        add("POST", "/__replica__/config", self.set_config)
        add("GET", "/__replica__/stats", self.get_stats)
        add("POST", "/__replica__/reset-stats", self.post_reset_stats)
        return app

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if "/__replica__/" in request.path:
            return await handler(request)
        client = request.remote or ""
        self.by_client[client] += 1
        self.by_kind[str(request.match_info.route.name)] += 1
        config = self.config
        if config.delay_ms:
            await asyncio.sleep(config.delay_ms / 1000)
        if config.blocked or client in config.block_clients:
            self.blocked += 1
            ref = (
                f"{secrets.token_hex(4)}&#46;{secrets.randbelow(10**10)}&#46;{secrets.token_hex(4)}"
            )
            response: web.StreamResponse = web.Response(
                text=BLOCK_PAGE.format(ref=ref), status=403, content_type="text/html"
            )
        else:
            response = await handler(request)
        self.by_status[response.status] += 1
        return response

    async def home(self, request: web.Request) -> web.StreamResponse:
        response = web.Response(text=HOME_PAGE, content_type="text/html")
        response.set_cookie("bm_sz", secrets.token_hex(16), path="/", httponly=True)
        response.set_cookie("_abck", secrets.token_hex(24), path="/")
        return response

    async def categories(self, request: web.Request) -> web.StreamResponse:
        return web.Response(body=dumps(category_tree()), content_type="application/json")

    async def listing(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json(loads=json.loads)
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("categoryId"), str):
            return _json({"Message": "The request is invalid.", "Success": False}, 400)
        node, page, size = body["categoryId"], body.get("pageNumber"), body.get("pageSize")
        if not isinstance(page, int) or page < 1 or not isinstance(size, int) or size < 1:
            return _json({"Message": "The request is invalid.", "Success": False}, 400)
        hide = body.get("isHideEverydayMarketProducts") is True
        self.listings[node][page] += 1
        self.page_sizes[size] += 1
        self.hide_marketplace[str(hide).lower()] += 1
        self.with_cookie += "bm_sz" in request.cookies
        accepts_json = "application/json" in request.headers.get("Accept", "")
        self.from_site += accepts_json and bool(request.headers.get("Origin"))
        if size > MAX_PAGE_SIZE:
            return _json({"Message": "An error has occurred.", "Success": False}, 400)
        if node in self.config.fail_departments:
            return _json({"Message": "An error has occurred."}, 500)
        key = (node, page, size, hide)
        cached = self._pages.get(key)
        if cached is None:
            cached = self._pages[key] = dumps(self._page(node, page, size, hide))
        return web.Response(body=cached, content_type="application/json")

    def _page(self, node: str, page: int, size: int, hide: bool) -> dict[str, Any]:
        rows = self.catalogue.by_department.get(node, [])
        if hide:
            rows = [p for p in rows if not p.marketplace]
        start = (page - 1) * size
        shown = rows[start : min(start + size, MAX_SERVED)] if start < MAX_SERVED else []
        sponsored = [
            rows[(page * 7 + n * 13) % len(rows)]
            for n in range(SPONSORED_PER_PAGE)
            if rows and not rows[(page * 7 + n * 13) % len(rows)].marketplace
        ]
        bundles = [_bundle(product_row(p, sponsored=True)) for p in sponsored]
        bundles += [_bundle(product_row(p)) for p in shown]
        return {**_ANSWER, "Bundles": bundles, "TotalRecordCount": len(rows), "Success": True}

    async def get_config(self, request: web.Request) -> web.StreamResponse:
        return _json(self.config.to_json())

    async def set_config(self, request: web.Request) -> web.StreamResponse:
        try:
            changes = await request.json(loads=json.loads)
            if not isinstance(changes, dict):
                raise ValueError("expected a JSON object")
            self.config.update(changes)
        except ValueError as exc:
            return _json({"error": str(exc)}, 400)
        return _json(self.config.to_json())

    async def get_stats(self, request: web.Request) -> web.StreamResponse:
        return _json(self.stats())

    async def post_reset_stats(self, request: web.Request) -> web.StreamResponse:
        self.reset_stats()
        return _json({"ok": True})


def _bundle(row: dict[str, Any]) -> dict[str, Any]:
    return {"Products": [row], "Name": row["Name"], "DisplayName": row["DisplayName"]}


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=dumps(data), status=status, content_type="application/json")


def _node(
    node_id: str, name: str, slug: str, parent: str | None, order: int, **extra: Any
) -> dict[str, Any]:
    return {
        "NodeId": node_id,
        "Description": name,
        "NodeLevel": 1 if parent == ROOT_PARENT else 2 if parent else 0,
        "ParentNodeId": parent,
        "DisplayOrder": order,
        "IsRestricted": False,
        "ProductCount": 0,
        "UrlFriendlyName": slug,
        "Children": [],
        "IsSpecial": False,
        "IsBundle": False,
        "IsUntraceable": False,
        **extra,
    }


def category_tree() -> dict[str, Any]:
    """``PiesCategoriesWithSpecials``: the specials grouping first, then the departments,
    each with its ``_SPECIALS`` child and one aisle."""
    nodes = [_node("specialsgroup", "Specials", "specials", None, 0, IsSpecial=True)]
    for order, (node_id, name, slug, _) in enumerate(DEPARTMENTS, start=1):
        department = _node(node_id, name, slug, ROOT_PARENT, order)
        department["Children"] = [
            _node(
                f"{node_id}_SPECIALS",
                f"{name} Specials",
                f"{slug}-specials",
                node_id,
                -1,
                IsSpecial=True,
            ),
            _node(f"{node_id}_ALL", f"All {name}", f"all-{slug}", node_id, 1),
        ]
        nodes.append(department)
    return {"Categories": nodes}


def make_app(coles: Catalogue, config: WoolworthsConfig | None = None) -> web.Application:
    """The Woolworths site for the products derived from ``coles`` (mounted at PREFIX)."""
    return WoolworthsSite(WoolworthsCatalogue.from_coles(coles), config).app()
