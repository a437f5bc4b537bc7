"""Documents the replica serves: product records, listing rows, and the HTML pages around them.

Shapes follow the real samples (``__NEXT_DATA__`` product records, listing rows, the browse
tree) so that parsers written against the replica work on the real site, and the other way
round. Everything here is pure: it builds dicts and strings, the server decides when.
"""

from __future__ import annotations

import html
import json
import re
from importlib import resources
from typing import TYPE_CHECKING, Any

from .gtin import MISSING, normalise

if TYPE_CHECKING:
    from .catalogue import Catalogue, ReplicaProduct
    from .categories import CategoryNode

try:  # orjson is a project dependency, but the replica must also run without it.
    import orjson

    def dumps(obj: Any) -> bytes:
        """Compact JSON as bytes."""
        return orjson.dumps(obj)

except ImportError:  # pragma: no cover - exercised only where orjson is absent

    def dumps(obj: Any) -> bytes:
        """Compact JSON as bytes."""
        return json.dumps(obj, separators=(",", ":")).encode()


__all__ = [
    "Pages",
    "category_tree",
    "dumps",
    "listing_row",
    "product_record",
    "runtime_config",
    "runtime_config_2026",
]

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(kg|g|mL|ml|L|l)\b")
_PACK = re.compile(r"(\d+)\s*(pack|each)")


def _template(name: str) -> str:
    return resources.files(__package__).joinpath("templates", name).read_text(encoding="utf-8")


def script_json(obj: Any) -> str:
    """JSON safe to inline in a ``<script>`` element."""
    return dumps(obj).decode().replace("</", "<\\/")


def runtime_config(base: str, api_key: str | None) -> dict[str, str]:
    """The 2024 ``runtimeConfig`` block: the key and GraphQL URL clients read before looking up.

    ``api_key`` None leaves the key out (a site that stopped publishing it there).
    """
    key = {} if api_key is None else {"BFF_API_SUBSCRIPTION_KEY": api_key}
    return {
        "COLES_API_URL": base,
        **key,
        "COL_URL": base,
        "COLES_BFF_API_URL": f"{base}/api/bff",
        "COLES_GRAPHQL_API_URL": f"{base}/api/graphql",
        "COLES_ENV": "replica",
        "PRODUCT_IMAGE_URL": f"{base}/productimages",
        "NEXT_HOST_URL": base,
        "AEM_HOST_URL": base,
    }


def runtime_config_2026(base: str, api_key: str | None, build_id: str) -> dict[str, Any]:
    """``window.__RUNTIME_CONFIG__`` (2026): the key among other settings, and no GraphQL URL
    (the site's client posts to its own origin's ``/api/graphql``)."""
    key = {} if api_key is None else {"BFF_API_SUBSCRIPTION_KEY": api_key}
    return {
        "COLES_ENV": "replica",
        "APP_VERSION": build_id,
        "NEXT_HOST_URL": base,
        "AEM_HOST_URL": base,
        **key,
        "PRODUCT_IMAGE_URL": f"{base}/productimages",
        "FEATURE_FLAGS": {"useV2NipAndAllergens": True, "newProductDetailsPage": True},
    }


def unit_pricing(product: ReplicaProduct) -> tuple[float, int, str]:
    """Comparable unit price: (price, ofMeasureQuantity, ofMeasureUnits)."""
    if product.weighted:
        return product.price, 1, "kg"
    size = _SIZE.search(product.size)
    if size:
        amount, unit = float(size.group(1)), size.group(2)
        if unit in ("kg", "L", "l"):
            return round(product.price / amount, 2), 1, unit.replace("l", "L")
        if amount >= 1000:
            return round(product.price / amount * 1000, 2), 1, "kg" if unit == "g" else "L"
        return round(product.price / amount * 100, 2), 100, "g" if unit == "g" else "mL"
    pack = _PACK.search(product.size)
    count = int(pack.group(1)) if pack else 1
    return round(product.price / max(count, 1), 2), 1, "ea"


def pricing(product: ReplicaProduct, *, detailed: bool = False) -> dict[str, Any]:
    """``pricing`` as in listing rows (``detailed``: with the product page's extra keys)."""
    price, quantity, units = unit_pricing(product)
    record: dict[str, Any] = {
        "now": product.price,
        "was": product.was or 0,
        "unit": {
            "quantity": 1,
            "ofMeasureQuantity": quantity,
            "ofMeasureUnits": units,
            "price": price,
            "ofMeasureType": units,
            "isWeighted": product.weighted,
        },
        "comparable": f"${price:.2f} per {quantity}{units}",
        "onlineSpecial": False,
    }
    if detailed:
        save = round(product.was - product.price, 2) if product.was else 0
        record.update(
            saveAmount=save or None,
            saveStatement=f"save ${save:.2f}" if save else None,
            promotionType="SPECIAL" if save else None,
            multiBuyPromotion=None,
            priceDescription=None,
            savePercent=0,
            specialType=None,
            offerDescription=None,
        )
        record["unit"]["isIncremental"] = False
    return record


def _heirs(product: ReplicaProduct, lineage: list[CategoryNode]) -> dict[str, Any]:
    first, middle, last = lineage[0], lineage[min(1, len(lineage) - 1)], lineage[-1]
    return {
        "merchandiseHeir": {
            "tradeProfitCentre": first.name.upper(),
            "categoryGroup": middle.name.upper(),
            "category": last.name.upper(),
            "subCategory": last.name.upper(),
            "className": product.size.upper(),
        },
        "onlineHeirs": [
            {
                "aisle": last.name,
                "category": middle.name,
                "subCategory": first.name,
                "categoryId": middle.id,
                "aisleId": last.id,
                "subCategoryId": first.id,
            }
        ],
    }


def _common(product: ReplicaProduct, catalogue: Catalogue) -> dict[str, Any]:
    lineage = catalogue.tree.lineage(catalogue.category_of(product).path)
    department = lineage[0].path
    sku = product.sku
    return {
        "id": sku,
        "name": product.name,
        "brand": product.brand,
        "description": f"{product.brand} {product.name} {product.size}".upper(),
        "size": product.size,
        "availability": True,
        "availabilityType": "InStoreAndOnline",
        "imageUris": [{"altText": "", "type": "default", "uri": f"/{str(sku)[0]}/{sku}.jpg"}],
        "locations": [
            {
                "aisleSide": None,
                "description": "Aisle information is not available for this product. "
                "Please ask a Team Member at $STORE to help you find this product.",
                "facing": 0,
                "aisle": None,
                "order": 9999,
                "shelf": None,
            }
        ],
        "restrictions": {
            "retailLimit": 20,
            "promotionalLimit": 12,
            "liquorAgeRestrictionFlag": department == "liquor",
            "tobaccoAgeRestrictionFlag": department == "tobacco",
            "restrictedByOrganisation": False,
            "delivery": [],
        },
        **_heirs(product, lineage),
    }


def listing_row(product: ReplicaProduct, catalogue: Catalogue) -> dict[str, Any]:
    """A ``_type: PRODUCT`` row of a listing page (no barcode, as on the real site)."""
    row: dict[str, Any] = {"_type": "PRODUCT", "adId": None, "adSource": None, "featured": False}
    row.update(_common(product, catalogue))
    row["pricing"] = pricing(product)
    return row


def product_record(
    product: ReplicaProduct, catalogue: Catalogue, *, with_gtin: bool
) -> dict[str, Any]:
    """The product record of the page's ``__NEXT_DATA__`` and of GraphQL (``with_gtin``).

    ``gtin`` is sent exactly as the catalogue holds it: absent, null, "", a number or a string.
    """
    record = _common(product, catalogue)
    sku = product.sku
    record.update(
        internalDescription="",
        longDescription=f"<p>{html.escape(product.brand)} {html.escape(product.name)}.</p>",
        minGuarantee=None,
        associatedProductId=None,
        continuity=None,
        lifestyle=None,
        lastUpdated=f"2024-10-{1 + sku % 28:02d}T{sku % 24:02d}:{sku % 60:02d}:17Z",
        additionalInfo=[{"title": "Storage instructions", "description": "Keep cool and dry."}],
        excludeFromSubstitution=False,
        brandDetails={
            "id": 4_000_000_000 + sum(map(ord, product.brand)),
            "name": product.brand,
            "seoToken": re.sub(r"[^a-z0-9]+", "-", product.brand.lower()).strip("-"),
        },
        nutrition=None,
        pricing=pricing(product, detailed=True),
        images=[
            {
                "full": {
                    "path": f"/wcsstore/Coles-CAS/images/{'/'.join(str(sku)[:3])}/{sku}.jpg",
                    "description": None,
                }
            }
        ],
    )
    if with_gtin and product.gtin is not MISSING:
        record["gtin"] = product.gtin
    return record


def category_tree(catalogue: Catalogue) -> list[dict[str, Any]]:
    """The browse tree's ``catalogGroupView`` with the catalogue's counts (empty nodes left out)."""

    def view(node: CategoryNode) -> dict[str, Any] | None:
        count = len(catalogue.in_category(node.path))
        if not count:
            return None
        out: dict[str, Any] = {
            "id": node.id,
            "level": node.level,
            "name": node.name,
            "originalName": node.name,
            "productCount": count,
            "seoToken": node.seo_token,
        }
        children = [v for v in map(view, node.children) if v is not None]
        if children:
            out["catalogGroupView"] = children
        return out

    return [v for v in map(view, catalogue.tree.roots) if v is not None]


def ad_rows(path: str, page: int, skus: list[int]) -> list[tuple[int, dict[str, Any]]]:
    """Ad and cross-sell rows to splice into a listing page, as (position, row)."""
    ad_id = f"replica_{path.replace('/', '_')}_{page}"
    rows: list[tuple[int, dict[str, Any]]] = [
        (
            1,
            {
                "_type": "SINGLE_TILE",
                "adId": f"{ad_id}_tile",
                "adSource": "citrus",
                "campaignName": "Replica_Single_Tile",
                "headingText": "Something new to try",
                "bannerText": "Shop the range",
                "ctaFlag": True,
                "ctaText": "Shop now",
                "ctaLink": "/promotions/replica",
                "productIds": [str(s) for s in skus[:5]],
                "additionalFields": [{"id": "roundelCode", "value": "13"}],
            },
        )
    ]
    if page % 2 == 0:
        rows.append(
            (
                13,
                {
                    "_type": "PRODUCT_ASSOCIATION",
                    "adId": f"{ad_id}_assoc",
                    "adSource": "citrus",
                    "heading": "Customers also bought",
                    "productIds": [str(s) for s in skus[-4:]],
                },
            )
        )
    if page % 3 == 0:
        rows.append(
            (
                25,
                {
                    "_type": "CONTENT_ASSOCIATION",
                    "adId": f"{ad_id}_content",
                    "adSource": "aem",
                    "title": "Recipe ideas",
                    "ctaLink": "/recipes",
                },
            )
        )
    return rows


def listing_payload(
    catalogue: Catalogue,
    node: CategoryNode,
    page: int,
    page_size: int,
    max_pages: int,
    base: str,
) -> dict[str, Any]:
    """The ``/_next/data/{buildId}/en/browse/{path}.json`` document for one page.

    ``noOfResults`` is the whole category, but pages past ``max_pages`` come back empty, as on
    the real site: walk sub-categories to see everything.
    """
    products = catalogue.in_category(node.path)
    start = (page - 1) * page_size
    chunk = products[start : start + page_size] if 1 <= page <= max_pages else []
    results: list[dict[str, Any]] = [listing_row(p, catalogue) for p in chunk]
    if results:
        for position, row in ad_rows(node.path, page, [p.sku for p in chunk]):
            results.insert(min(position, len(results)), row)
    children = [
        {
            "level": child.level,
            "name": child.name,
            "originalName": child.name,
            "seoToken": child.seo_token,
            "id": child.id,
            "productCount": len(catalogue.in_category(child.path)),
            "catalogGroupView": None,
        }
        for child in node.children
        if catalogue.in_category(child.path)
    ]
    return {
        "pageProps": {
            "assetsUrl": base,
            "isMobile": False,
            "searchResults": {
                "didYouMean": None,
                "noOfResults": len(products),
                "start": start,
                "pageSize": page_size,
                "keyword": None,
                "resultType": 1,
                "alternateResult": False,
                "filters": [],
                "banners": [],
                "adMemoryToken": "",
                "pageRestrictions": {
                    "tobaccoProducts": node.department == "tobacco",
                    "restrictedByOrganisationProducts": False,
                },
                "results": results,
                "catalogGroupView": children,
                "excludedCatalogGroupView": {"productCount": 0},
            },
            "searchSessionId": f"replica-{node.id}",
            "sortByValue": "",
            "isRestricted": False,
        },
        "__N_SSP": True,
    }


class Pages:
    """HTML documents, from templates read once, in either layout.

    2024: the key and GraphQL URL in ``__NEXT_DATA__.runtimeConfig``. 2026: the key in an
    inline ``window.__RUNTIME_CONFIG__`` script without an id, ``__NEXT_DATA__`` without
    ``runtimeConfig``, and JSON-LD ``gtin`` on product pages.
    """

    def __init__(self) -> None:
        self._home = _template("home.html")
        self._product = _template("product_page.html")
        self._not_found = _template("not_found.html")

    @staticmethod
    def next_data(
        page: str,
        query: dict[str, Any],
        page_props: dict[str, Any],
        build_id: str,
        runtime: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """A ``__NEXT_DATA__`` document with the real one's top-level keys."""
        data: dict[str, Any] = {
            "props": {"pageProps": page_props, "__N_SSP": True},
            "page": page,
            "query": query,
            "buildId": build_id,
        }
        if runtime is not None:
            data["runtimeConfig"] = runtime
        data.update(
            isFallback=False,
            gssp=True,
            appGip=True,
            locale="en",
            locales=["en"],
            defaultLocale="en",
            scriptLoader=[],
        )
        return data

    @staticmethod
    def _settings(
        layout: str, build_id: str, base: str, api_key: str | None
    ) -> tuple[str, dict[str, Any] | None]:
        """(inline ``__RUNTIME_CONFIG__`` script, ``runtimeConfig``) for ``layout``."""
        if layout == "2024":
            return "", runtime_config(base, api_key)
        config = script_json(runtime_config_2026(base, api_key, build_id))
        return f"<script>window.__RUNTIME_CONFIG__={config};</script>", None

    def _page(
        self,
        template: str,
        layout: str,
        next_data: tuple[str, dict[str, Any], dict[str, Any]],
        build_id: str,
        base: str,
        api_key: str | None,
        *,
        key_script: str | None = None,
        show_build_id: bool = True,
    ) -> str:
        script, runtime = self._settings(layout, build_id, base, api_key)
        if key_script is not None:  # the key moved into a separate script (a site change)
            script += f'<script src="{key_script}" defer></script>'
            runtime = None  # 2024: no runtimeConfig left at all (2026 has none anyway)
        page, query, page_props = next_data
        data = self.next_data(page, query, page_props, build_id, runtime)
        if not show_build_id:
            del data["buildId"]
        return template.replace("@@RUNTIME_CONFIG@@", script).replace(
            "@@NEXT_DATA@@", script_json(data)
        )

    def home(
        self,
        build_id: str,
        base: str,
        api_key: str | None,
        layout: str = "2026",
        *,
        key_script: str | None = None,
        show_build_id: bool = True,
    ) -> str:
        """The home page: clients read ``buildId`` and the key (2024: the GraphQL URL too).

        ``key_script``: the key is not in the page but in the script at that path;
        ``show_build_id`` False leaves ``buildId`` out of ``__NEXT_DATA__`` (both: site
        changes the replica can make on purpose).
        """
        template = self._home.replace("@@BASE_URL@@", base)
        props = {"assetsUrl": base, "baseUrl": base}
        return self._page(
            template,
            layout,
            ("/", {}, props),
            build_id,
            base,
            api_key,
            key_script=key_script,
            show_build_id=show_build_id,
        )

    def not_found(
        self,
        build_id: str,
        base: str,
        api_key: str | None,
        layout: str = "2026",
        *,
        key_script: str | None = None,
        show_build_id: bool = True,
    ) -> str:
        """The 404 page (unknown or delisted SKU, unknown path); options as :meth:`home`."""
        page: tuple[str, dict[str, Any], dict[str, Any]] = ("/_error", {}, {"statusCode": 404})
        return self._page(
            self._not_found,
            layout,
            page,
            build_id,
            base,
            api_key,
            key_script=key_script,
            show_build_id=show_build_id,
        )

    def product(
        self,
        product: ReplicaProduct,
        record: dict[str, Any],
        slug: str,
        build_id: str,
        base: str,
        api_key: str | None,
        with_gtin: bool,
        layout: str = "2026",
        *,
        key_script: str | None = None,
        show_build_id: bool = True,
    ) -> str:
        """A product page: ``record`` in ``__NEXT_DATA__`` and a JSON-LD Product with ``sku``.

        ``record`` is normally ``product``'s own; it differs only to mimic the real site's
        oddity of a page whose ``__NEXT_DATA__`` holds another product. The JSON-LD carries
        ``gtin`` in 2026 (as a page saved in 2025 did) when the product has a valid 13-digit
        one, and ``gtin13`` in either layout when ``with_gtin`` (the ``page_gtin`` switch).
        ``key_script`` and ``show_build_id`` as in :meth:`home`.
        """
        canonical = f"{base}{product.url_path}"
        json_ld: dict[str, Any] = {
            "@context": "https://schema.org/",
            "@type": "Product",
            "@id": canonical,
            "image": f"{base}/wcsstore/Coles-CAS/images/{product.sku}.jpg",
            "name": f"{product.name} | {product.size}",
            "description": "",
            "sku": product.sku,
        }
        code = normalise(product.gtin)
        if layout != "2024" and code is not None and len(code) == 13:
            json_ld["gtin"] = code
        json_ld["brand"] = {"@type": "Brand", "name": product.brand}
        json_ld["offers"] = [
            {
                "@type": "Offer",
                "priceCurrency": "AUD",
                "itemCondition": "https://schema.org/NewCondition",
                "availability": "https://schema.org/InStock",
                "url": canonical,
                "seller": {"@type": "Organization", "name": "Coles"},
                "price": product.price,
            }
        ]
        if with_gtin and product.gtin is not MISSING and product.gtin is not None:
            json_ld["gtin13"] = str(product.gtin)
        page_props = {
            "assetsUrl": base,
            "product": record,
            "baseUrl": base,
            "isRestricted": False,
            "isFromGoogleAdSource": False,
        }
        title = html.escape(f"{product.brand} {product.name} {product.size}")
        brand_slug = re.sub(r"[^a-z0-9]+", "-", product.brand.lower()).strip("-")
        template = (
            self._product.replace("@@TITLE@@", title)
            .replace("@@CANONICAL@@", html.escape(canonical))
            .replace("@@JSON_LD@@", script_json(json_ld))
            .replace("@@BRAND_SLUG@@", brand_slug)
            .replace("@@BRAND@@", html.escape(product.brand))
            .replace("@@HEADING@@", html.escape(f"{product.brand} {product.name} | {product.size}"))
            .replace("@@PRICE@@", f"${product.price:.2f}")
        )
        page = ("/product/[slug]", {"slug": slug}, page_props)
        return self._page(
            template,
            layout,
            page,
            build_id,
            base,
            api_key,
            key_script=key_script,
            show_build_id=show_build_id,
        )
