"""The replica site as an aiohttp application, with switchable misbehaviour and request stats.

One asyncio process answers thousands of requests a second on loopback, so it is never the
bottleneck of a crawl benchmark. Behaviour (layout, bot check, block page, rate limits,
outages, slow answers, broken SKUs, key rotation) can be set at start-up or changed while
running through ``/__replica__/config``; ``/__replica__/stats`` tells tests what the crawler
actually asked for.

Endpoints (the contract in the project's shared README; ``layout`` picks the year):

- ``GET /``: home page. 2026 (default): an inline ``<script>window.__RUNTIME_CONFIG__={...,
  "BFF_API_SUBSCRIPTION_KEY": "<32 hex>", ...};</script>`` without an id, and ``__NEXT_DATA__``
  with ``buildId`` but no ``runtimeConfig``; no GraphQL URL anywhere (clients use
  ``{base}/api/graphql``). 2024: ``__NEXT_DATA__.runtimeConfig`` with the key and
  ``COLES_GRAPHQL_API_URL``.
- ``POST /api/graphql``: real GraphQL (graphql-core) needing ``ocp-apim-subscription-key``
  (else 401): ``product(productId: String!, storeId: BrandedId!, ...)`` (``GetProductDetails``,
  one or many aliases a document) and, in 2026 only, ``productCategories`` (``GetShopProductsMenu``).
  Unknown SKU: "Product <id> not found" on that alias (200; with ``product_non_null`` the
  schema declares the root field ``Product!`` and the error nulls the whole document:
  ``{"data": null, "errors": [...]}``, 200, as GraphQL propagates nulls); a store in
  ``unknown_stores``: "Invalid StoreId" (``BAD_USER_INPUT``) on the alias; a SKU in
  ``gtin_error_skus``: its ``gtin`` fails to resolve (null, and an error whose path is
  ``[alias, "gtin"]``); a document asking for a SKU in ``cut_off_skus``: its JSON cut off
  halfway (a connection closed early by a proxy); syntax 400 ``GRAPHQL_PARSE_FAILED``;
  invalid document 400 ``GRAPHQL_VALIDATION_FAILED``; bad variables 400 ``BAD_USER_INPUT``;
  more ``product`` fields than ``max_aliases``: 400 ``QUERY_TOO_COMPLEX``. The key can rotate
  every ``rotate_key_after`` accepted requests.
- ``GET /product/{slug}-{sku}``: product page (2026: JSON-LD ``gtin``; ``page_gtin`` adds it to
  ``__NEXT_DATA__`` and JSON-LD ``gtin13`` in both layouts).
- ``GET /_next/data/{buildId}/en/browse.json``: the category tree (both layouts).
- ``GET /_next/data/{buildId}/en/browse/{path}.json?page=N&storeId=0584``: listing pages.
- ``GET /robots.txt``; ``GET|POST /__replica__/...``: control and stats (never challenged
  nor blocked).
- ``/woolworths/...``: Woolworths, with its own protection and switches
  (:mod:`colesbarcodes.replica.woolworths`); nothing above applies there.

Breaking on purpose (``breaks``; ``--break MODE``, repeatable or a comma list; ``breaks: []``
restores the site), one point of the contract each (:data:`BREAKS`), in either layout:

- ``key-moved``: no page (home, product, 404) carries the key: no key in
  ``window.__RUNTIME_CONFIG__``, no ``runtimeConfig`` in ``__NEXT_DATA__`` (2024), and not even
  the name ``BFF_API_SUBSCRIPTION_KEY``. The pages load ``/_next/static/chunks/env-<hash>.js``,
  which answers ``self.__ENV={"apimSubscriptionKey":"<key>"};`` (404 when the mode is off);
  ``/api/graphql`` still takes the key; ``buildId`` stays.
- ``build-id-missing``: no page's ``__NEXT_DATA__`` has ``buildId`` (the key stays where the
  layout puts it); ``/_next/data/{buildId}/...`` still answers under the real id.
- ``operation-renamed``: the root field ``product`` is ``productDetails``: ``GetProductDetails``
  answers 400 ``GRAPHQL_VALIDATION_FAILED`` "Cannot query field 'product' on type 'Query'..."
  (graphql-core's words); ``productCategories`` unchanged.
- ``gtin-removed``: ``gtin`` stays in the schema but every GraphQL record answers ``null``;
  product pages unchanged.
- ``graphql-maintenance``: ``POST /api/graphql`` answers 200 with an HTML maintenance page
  (what a site's edge serves while the API is down); pages and listings unchanged.
- ``categories-moved``: ``productCategories`` is ``shopMenu`` (2026; a ``GetShopProductsMenu``
  document answers 400 as above) and ``browse.json`` answers 404 (both layouts); listing pages
  still answer.
- ``categories-retyped``: the category types are declared as the project's first document had
  them, not as the site's own query does: the node type is ``CatalogGroupView`` (no
  ``ProductCategory``) and ``withCampaignLinks`` is ``Boolean``, so the site's own
  ``GetShopProductsMenu`` is refused whole (400 ``GRAPHQL_VALIDATION_FAILED``, "Unknown type
  'ProductCategory'."), and ``browse.json`` answers 404 (both layouts; 2024 has no
  ``productCategories`` to retype); listing pages still answer.

Protection (Imperva): with ``challenge`` on, content without a valid token answers the "Pardon
Our Interruption" page (2026: the token in ``incap_ses_*`` next to ``visid_incap_*``; 2024:
``reese84``). A client address in ``block_clients`` gets Incapsula's block page for everything
(``block_status``), before any challenge.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import random
import re
import secrets
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web
from graphql import GraphQLError

from . import graphql_api, woolworths
from .challenge import COOKIE_NAME, SCRIPT_PREFIX, SESSION_PREFIX, VISITOR_PREFIX, Challenge
from .pages import Pages, _template, category_tree, dumps, listing_payload, product_record

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from .catalogue import Catalogue

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_BUILD_ID",
    "SITE_KEY",
    "ReplicaConfig",
    "ReplicaSite",
    "make_app",
]

DEFAULT_API_KEY = "5ad1ca0b9e2f4c7d8a3b6e1f0c9d2a47"
DEFAULT_BUILD_ID = "20241015.01_v4.24.0-replica"
LISTING_CACHE_BYTES = 256 * 1024 * 1024  # encoded listing pages kept (~1,300 pages of 48 rows)

# Kinds of request counted in the stats; the first five are "content": challenged and faulted.
CONTENT_KINDS = ("home", "graphql", "product_page", "listing", "categories")
KINDS = (*CONTENT_KINDS, "robots", "challenge_script")

_GRAPHQL_KEY = web.RequestKey("replica_graphql", graphql_api.GraphQLRequest)
_SKU_IN_SLUG = re.compile(r"(?:^|-)(\d+)$")
_API_KEY = re.compile(r"^[0-9a-f]{32}$")
_INCIDENT = "0-1199990858670542825"  # the sample's incident id, varied per answer
CONTROL_PREFIX = "/__replica__/"

ERROR_KINDS = ("429", "503", "timeout", "reset")
LAYOUTS = graphql_api.LAYOUTS
BLOCK_STATUSES = (200, 403, 503)
# Contract points the replica can break on purpose (``breaks``), one site change each, so that
# ``scrapy site-check`` and the crawls are tested against the failure each check exists for.
BREAKS: dict[str, str] = {
    "key-moved": "no key in the pages; /_next/static/chunks/env-<hash>.js serves it",
    "build-id-missing": "__NEXT_DATA__ has no buildId; /_next/data/ routes still answer",
    "operation-renamed": "GraphQL `product` renamed productDetails: GetProductDetails 400",
    "gtin-removed": "GraphQL answers gtin: null for every product (the field stays)",
    "categories-moved": "productCategories renamed shopMenu; browse.json answers 404",
    "graphql-maintenance": "the GraphQL URL answers 200 with an HTML maintenance page",
    "categories-retyped": "category node type CatalogGroupView (not ProductCategory), "
    "withCampaignLinks: Boolean: GetShopProductsMenu 400; browse.json answers 404",
}
KEY_SCRIPT_PREFIX = "/_next/static/chunks/env-"


@dataclass
class ReplicaConfig:
    """Behaviours of the replica; every field can be changed at runtime (``/__replica__/config``).

    Counters (``*_every``) count content requests (home, GraphQL, product pages, listings, the
    category tree) that got past the bot check, and restart when the config or stats change.
    """

    layout: str = "2026"  # the site as in late 2026, or "2024" (see the module docstring)
    api_key: str = DEFAULT_API_KEY  # 32 lowercase hex; changes when the key rotates
    build_id: str = DEFAULT_BUILD_ID
    publish_key: bool = True  # False: the home page carries no key (a site change)
    published_key: str = ""  # shown on pages instead of api_key (a key the API refuses)
    rotate_key_after: int = 0  # a new key after N GraphQL requests accepted (0 = never)
    max_aliases: int = 0  # refuse documents with more product fields than this (0 = no limit)
    state_limit: bool = True  # the refusal names the limit (a real server may not)
    challenge: bool = False  # JavaScript bot check on every content request
    cookie_ttl_s: float | None = None  # how long an accepted token cookie stays valid
    # Incapsula's block page for these client addresses (request.remote), before any check
    block_clients: list[str] = field(default_factory=list)
    block_status: int = 200  # status of the block page: 200, 403 or 503
    block_after: int = 0  # a listed client gets its first N content requests answered first
    rate_limit_every: int = 0  # every Nth content request answers 429 (0 = never)
    unavailable_every: int = 0  # every Nth content request answers 503 (0 = never)
    error_share: float = 0.0  # share of content requests failing at random, as error_kinds
    # what a random failure is, drawn evenly: "429", "503", "timeout" (the answer comes
    # hang_s late, after the client gave up) or "reset" (the connection is dropped)
    error_kinds: list[str] = field(default_factory=lambda: ["429", "503"])
    hang_s: float = 30.0
    seed: int = 0  # seeds the random errors
    retry_after_s: int = 1  # Retry-After on 429 and 503
    delay_ms: float = 0.0  # added to every content request
    fail_skus: set[int] = field(default_factory=set)  # always 503 (GraphQL and product page)
    not_found_skus: set[int] = field(default_factory=set)  # answered as unknown
    gtin_error_skus: set[int] = field(default_factory=set)  # gtin fails to resolve (a field error)
    unknown_stores: set[int] = field(default_factory=set)  # "Invalid StoreId" (BAD_USER_INPUT)
    cut_off_skus: set[int] = field(default_factory=set)  # a document asking for one: cut-off JSON
    product_non_null: bool = False  # the schema declares product(...): Product! (nulls propagate)
    mismatch_skus: set[int] = field(default_factory=set)  # page's __NEXT_DATA__ is another SKU
    page_gtin: bool = False  # product pages carry the GTIN (to test a page-based source)
    robots_disallow: list[str] = field(default_factory=lambda: ["/checkout", "/account"])
    listing_page_size: int = 48
    listing_max_pages: int = 104
    default_store: str = "0584"
    breaks: list[str] = field(default_factory=list)  # contract points broken (BREAKS)

    def __post_init__(self) -> None:
        self.update(self.to_json())  # the same checks as a runtime change

    def update(self, changes: Mapping[str, Any]) -> None:
        """Apply ``changes`` (JSON values), checking names and types; all or nothing."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ValueError(f"unknown config fields: {', '.join(unknown)}")
        coerced = {
            name: _coerce(name, getattr(self, name), value) for name, value in changes.items()
        }
        for name, value in coerced.items():
            setattr(self, name, value)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (sets become sorted lists)."""
        out = dataclasses.asdict(self)
        for name, value in out.items():
            if isinstance(value, set):
                out[name] = sorted(value)
        return out


def _coerce(name: str, current: Any, value: Any) -> Any:
    try:
        if name == "cookie_ttl_s":
            return None if value is None else float(value)
        if name == "layout":
            if str(value) not in LAYOUTS:
                raise ValueError(f"layouts are {', '.join(LAYOUTS)}")
            return str(value)
        if name in ("api_key", "published_key"):
            if not isinstance(value, str) or not (
                _API_KEY.match(value) or (name == "published_key" and value == "")
            ):
                raise ValueError("a key is 32 lowercase hexadecimal characters")
            return value
        if name == "block_status":
            if isinstance(value, bool) or int(value) not in BLOCK_STATUSES:
                raise ValueError(f"statuses are {', '.join(map(str, BLOCK_STATUSES))}")
            return int(value)
        if name == "breaks":
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, (list, tuple)):
                raise TypeError("expected a list of mode names")
            modes = [m.strip() for v in value for m in str(v).split(",") if m.strip()]
            unknown = sorted(set(modes) - set(BREAKS))
            if unknown:
                raise ValueError(
                    f"unknown break mode {', '.join(map(repr, unknown))}; "
                    f"modes are {', '.join(BREAKS)}"
                )
            return list(dict.fromkeys(modes))  # each once, in the order given
        if name == "block_clients":
            if isinstance(value, str):
                value = [value]
            return [a.strip() for v in value for a in str(v).split(",") if a.strip()]
        if isinstance(current, bool):
            if not isinstance(value, bool):
                raise TypeError("expected true or false")
            return value
        if isinstance(current, set):
            return {int(v) for v in value}
        if isinstance(current, list):
            if isinstance(value, str):
                raise TypeError("expected a list")
            values = [str(v) for v in value]
            if name == "error_kinds" and not set(values) <= set(ERROR_KINDS):
                raise ValueError(f"kinds are {', '.join(ERROR_KINDS)}")
            return values
        if isinstance(current, int):
            number = int(value)
            if number < 0:
                raise ValueError("must not be negative")
            return number
        if isinstance(current, float):
            real = float(value)
            if real < 0 or (name == "error_share" and real > 1):
                raise ValueError("out of range")
            return real
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: {exc}") from exc


class Stats:
    """Request counts the tests assert on ("SKU X was looked up N times")."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Zero everything."""
        self.started = time.time()
        self.requests = 0
        self.by_kind: Counter[str] = Counter({kind: 0 for kind in KINDS})
        self.by_status: Counter[int] = Counter()
        self.by_sku: Counter[int] = Counter()
        self.by_sku_kind: dict[str, Counter[int]] = {
            "graphql": Counter(),
            "product_page": Counter(),
        }
        self.by_store: Counter[str] = Counter()
        self.listings: defaultdict[str, Counter[int]] = defaultdict(Counter)
        self.challenge: Counter[str] = Counter(
            served=0, scripts_served=0, cookies_accepted=0, cookies_rejected=0, passed=0
        )
        self.faults: Counter[str] = Counter(
            rate_limited=0, unavailable=0, random=0, fail_sku=0, not_found_sku=0
        )
        self.graphql_documents = 0  # GraphQL requests
        self.graphql_products = 0  # product fields they asked for
        self.by_operation: Counter[str] = Counter()
        self.too_complex = 0  # documents refused for asking too many products
        self.key_rotations = 0
        self.blocked = 0  # requests answered with the block page
        self.by_client: Counter[str] = Counter()  # remote address -> requests (not control)

    def to_json(self) -> dict[str, Any]:
        """The ``/__replica__/stats`` document (JSON object keys are strings)."""
        return {
            "requests": self.requests,
            "by_kind": dict(self.by_kind),
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "by_sku": {str(k): v for k, v in self.by_sku.items()},
            "by_sku_kind": {
                kind: {str(k): v for k, v in counts.items()}
                for kind, counts in self.by_sku_kind.items()
            },
            "by_store": dict(self.by_store),
            "listings": {
                path: {str(k): v for k, v in sorted(pages.items())}
                for path, pages in self.listings.items()
            },
            "challenge": dict(self.challenge),
            "faults": dict(self.faults),
            "graphql_documents": self.graphql_documents,
            "graphql_products": self.graphql_products,
            "by_operation": dict(self.by_operation),
            "too_complex": self.too_complex,
            "key_rotations": self.key_rotations,
            "blocked": self.blocked,
            "by_client": dict(self.by_client),
            "uptime_s": round(time.time() - self.started, 3),
        }


def _json(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        body=dumps(data), status=status, headers=headers, content_type="application/json"
    )


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html")


def _graphql_error(message: str, code: str, status: int = 400) -> web.Response:
    return _json(graphql_api.error_body(message, code), status)


def _base_url(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


class ReplicaSite:
    """Handlers plus the state they share: catalogue, config, stats and the bot check."""

    def __init__(
        self,
        catalogue: Catalogue,
        config: ReplicaConfig | None = None,
        woolworths_config: woolworths.WoolworthsConfig | None = None,
    ) -> None:
        self.catalogue = catalogue
        self.config = config if config is not None else ReplicaConfig()
        self.woolworths_config = woolworths_config
        self.stats = Stats()
        self.challenge = Challenge(ttl=self.config.cookie_ttl_s)
        self.pages = Pages()
        self._block_page = _template("block_page.html")
        self._sequence = 0
        self._key_uses = 0  # GraphQL requests accepted with the current key
        self._content_by_client: Counter[str] = Counter()  # for block_after
        self._rng = random.Random(self.config.seed)
        # Listing pages are pure functions of the catalogue: encode each one once, keeping at
        # most LISTING_CACHE_BYTES of them (the oldest go first), whatever the catalogue size.
        self._listing_cache: dict[tuple[str, int, int, int, str], bytes] = {}
        self._listing_cache_bytes = 0

    # -- plumbing -------------------------------------------------------------------------------

    def app(self) -> web.Application:
        """The aiohttp application serving this site."""
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024)
        app[SITE_KEY] = self
        add = app.router.add_route
        add("GET", "/", self.home, name="home")
        add("GET", "/robots.txt", self.robots, name="robots")
        add("POST", "/api/graphql", self.graphql, name="graphql")
        add("GET", "/product/{slug}", self.product_page, name="product_page")
        add("GET", "/_next/data/{build_id}/en/browse.json", self.categories, name="categories")
        add("GET", "/_next/data/{build_id}/en/browse/{path:.+}", self.listing, name="listing")
        add("GET", SCRIPT_PREFIX + "/{nonce}", self.challenge_script, name="challenge_script")
        add("GET", KEY_SCRIPT_PREFIX + "{name}", self.key_script, name="key_script")
        add("GET", "/__replica__/config", self.get_config)
        add("POST", "/__replica__/config", self.set_config)
        add("GET", "/__replica__/stats", self.get_stats)
        add("POST", "/__replica__/reset-stats", self.reset_stats)
        add("POST", "/__replica__/revoke-cookies", self.revoke_cookies)
        # Woolworths, same catalogue's products, its own protection and switches
        app.add_subapp(
            woolworths.PREFIX, woolworths.make_app(self.catalogue, self.woolworths_config)
        )
        return app

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Block by address, count, then (for content) delay, bot-check and inject faults."""
        if request.path.startswith((CONTROL_PREFIX, woolworths.PREFIX + "/")):
            return await handler(request)  # control, or Woolworths (its own middleware)
        stats = self.stats
        client = request.remote or ""
        stats.by_client[client] += 1
        kind = request.match_info.route.name
        if kind in KINDS:
            stats.requests += 1
            stats.by_kind[kind] += 1
        if self._blocks(client, kind):
            stats.blocked += 1
            response: web.StreamResponse = self._blocked()
        elif kind not in KINDS:
            return await handler(request)
        else:
            gated = await self._gate(request, kind)
            response = gated if gated is not None else await handler(request)
        stats.by_status[response.status] += 1
        return response

    def _blocks(self, client: str, kind: str | None) -> bool:
        """Whether ``client`` gets the block page (after its ``block_after`` content answers)."""
        config = self.config
        if client not in config.block_clients:
            return False
        served = self._content_by_client[client]
        if served < config.block_after:
            if kind in CONTENT_KINDS:
                self._content_by_client[client] += 1
            return False
        return True

    def _blocked(self) -> web.Response:
        """Incapsula's block page (the real one, with a fresh incident id)."""
        incident = f"0-{secrets.randbelow(10**19):019d}"
        text = self._block_page.replace(_INCIDENT, incident)
        response = _html(text, self.config.block_status)
        response.headers["Cache-Control"] = "no-cache"
        return response

    async def _gate(self, request: web.Request, kind: str) -> web.StreamResponse | None:
        if kind not in CONTENT_KINDS:
            return None
        config = self.config
        skus = await self._skus_of(request, kind)
        if config.delay_ms:
            await asyncio.sleep(config.delay_ms / 1000)
        if config.challenge:
            blocked = self._bot_check(request)
            if blocked is not None:
                return blocked
        if config.fail_skus and not config.fail_skus.isdisjoint(skus):
            self.stats.faults["fail_sku"] += 1
            return self._unavailable()
        self._sequence += 1
        if config.rate_limit_every and self._sequence % config.rate_limit_every == 0:
            self.stats.faults["rate_limited"] += 1
            return self._rate_limited()
        if config.unavailable_every and self._sequence % config.unavailable_every == 0:
            self.stats.faults["unavailable"] += 1
            return self._unavailable()
        if config.error_share and config.error_kinds and self._rng.random() < config.error_share:
            self.stats.faults["random"] += 1
            fault = self._rng.choice(config.error_kinds)
            self.stats.faults[f"random_{fault}"] += 1
            if fault == "429":
                return self._rate_limited()
            if fault == "timeout":
                await asyncio.sleep(config.hang_s)
                return None
            if fault == "reset" and request.transport is not None:
                request.transport.abort()  # the client sees the connection dropped
                return web.Response(status=599)  # never sent
            return self._unavailable()
        return None

    async def _skus_of(self, request: web.Request, kind: str) -> list[int]:
        """The SKUs a request is about (a GraphQL body is read and parsed once), counted."""
        skus: list[int] = []
        if kind == "product_page":
            match = _SKU_IN_SLUG.search(request.match_info["slug"])
            skus = [int(match.group(1))] if match else []
        elif kind == "graphql":
            parsed = await self._read_graphql(request)
            request[_GRAPHQL_KEY] = parsed
            stats = self.stats
            stats.graphql_documents += 1
            stats.graphql_products += len(parsed.products)
            stats.by_operation[parsed.operation_name] += 1
            for store in parsed.stores:
                stats.by_store[store] += 1
            skus = parsed.skus
        for sku in skus:
            self.stats.by_sku[sku] += 1
            self.stats.by_sku_kind[kind][sku] += 1
        return skus

    def _bot_check(self, request: web.Request) -> web.Response | None:
        layout = self.config.layout
        cookies = request.cookies
        if layout == "2024":
            state = self.challenge.verify(cookies.get(COOKIE_NAME))
        else:
            # Imperva 2026: the token in an incap_ses_* cookie, next to visid_incap_*.
            tokens = [v for n, v in cookies.items() if n.startswith(SESSION_PREFIX)]
            has_visitor = any(n.startswith(VISITOR_PREFIX) for n in cookies)
            states = [self.challenge.verify(t) for t in tokens] if has_visitor else []
            passing = [s for s in states if s in ("new", "valid")]
            if passing:
                state = "new" if "new" in passing else "valid"
            elif states:
                state = next((s for s in states if s != "absent"), "absent")
            else:
                state = "invalid" if tokens and not has_visitor else "absent"
        counts = self.stats.challenge
        if state in ("new", "valid"):
            counts["passed"] += 1
            if state == "new":
                counts["cookies_accepted"] += 1
            return None
        if state != "absent":
            counts["cookies_rejected"] += 1
        counts["served"] += 1
        response = _html(self.challenge.page())
        response.headers["Cache-Control"] = "no-cache, no-store, must-revalidate"
        for name, value in self.challenge.visitor_cookies(layout).items():
            response.set_cookie(name, value, path="/", max_age=31_536_000, httponly=True)
        return response

    def _rate_limited(self) -> web.Response:
        seconds = self.config.retry_after_s
        body = {"statusCode": 429, "message": f"Rate limit is exceeded. Try again in {seconds} s."}
        return _json(body, 429, {"Retry-After": str(seconds)})

    def _unavailable(self) -> web.Response:
        response = _html("<html><body><h1>503 Service Unavailable</h1></body></html>", 503)
        response.headers["Retry-After"] = str(self.config.retry_after_s)
        return response

    def _shown_key(self) -> str | None:
        """The key pages publish (None: none at all)."""
        config = self.config
        if not config.publish_key:
            return None
        return config.published_key or config.api_key

    def _page_key(self) -> tuple[str | None, dict[str, Any]]:
        """(key shown in pages, page options) under the ``breaks`` that change every page:
        ``key-moved`` and ``build-id-missing`` are site-wide, as a real deployment would be."""
        breaks = self.config.breaks
        moved = "key-moved" in breaks
        options: dict[str, Any] = {
            "key_script": self._key_script_path() if moved else None,
            "show_build_id": "build-id-missing" not in breaks,
        }
        return (None if moved else self._shown_key()), options

    def _not_found(self, request: web.Request) -> web.Response:
        config = self.config
        key, options = self._page_key()
        text = self.pages.not_found(
            config.build_id, _base_url(request), key, config.layout, **options
        )
        return _html(text, 404)

    # -- content --------------------------------------------------------------------------------

    async def home(self, request: web.Request) -> web.StreamResponse:
        """Home page with ``buildId`` and the subscription key (2024: the GraphQL URL too)."""
        config = self.config
        key, options = self._page_key()
        return _html(
            self.pages.home(config.build_id, _base_url(request), key, config.layout, **options)
        )

    def _key_script_path(self) -> str:
        digest = hashlib.sha256(self.config.build_id.encode()).hexdigest()[:16]
        return f"{KEY_SCRIPT_PREFIX}{digest}.js"

    async def key_script(self, request: web.Request) -> web.StreamResponse:
        """Where the key sits when it moved out of the page (``key-moved``)."""
        if "key-moved" not in self.config.breaks or request.path != self._key_script_path():
            return web.Response(status=404, text="not found")
        env = json.dumps({"apimSubscriptionKey": self._shown_key() or ""}, separators=(",", ":"))
        return web.Response(text=f"self.__ENV={env};", content_type="application/javascript")

    async def robots(self, request: web.Request) -> web.StreamResponse:
        """robots.txt: everything allowed but ``robots_disallow``."""
        lines = ["User-agent: *", *(f"Disallow: {path}" for path in self.config.robots_disallow)]
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")

    async def challenge_script(self, request: web.Request) -> web.StreamResponse:
        """The script the bot-check page loads; running it sets the token cookie(s)."""
        script = self.challenge.script(request.match_info["nonce"], self.config.layout)
        if script is None:
            return web.Response(status=404, text="not found")
        self.stats.challenge["scripts_served"] += 1
        return web.Response(
            text=script,
            content_type="application/javascript",
            headers={"Cache-Control": "no-store"},
        )

    async def _read_graphql(self, request: web.Request) -> graphql_api.GraphQLRequest:
        """The body as a prepared GraphQL request (its ``error`` set when it cannot run)."""
        try:
            body = await request.json(loads=json.loads)
        except ValueError:
            body = None
        return graphql_api.prepare(body, self._renamed_fields())

    async def graphql(self, request: web.Request) -> web.StreamResponse:
        """Execute a GraphQL document against the layout's schema (key checked first)."""
        config = self.config
        key = request.headers.get("ocp-apim-subscription-key")
        if key != config.api_key:
            problem = "missing" if not key else "invalid"
            message = (
                f"Access denied due to {problem} subscription key. Make sure to include a valid "
                "subscription key when making requests to an API."
            )
            return _json({"statusCode": 401, "message": message}, 401)
        self._key_uses += 1
        if "graphql-maintenance" in config.breaks:
            self.stats.faults["graphql_maintenance"] += 1
            return web.Response(text=MAINTENANCE_PAGE, content_type="text/html")
        try:
            return self._answer_graphql(request)
        finally:
            if config.rotate_key_after and self._key_uses >= config.rotate_key_after:
                self._rotate_key()

    def _answer_graphql(self, request: web.Request) -> web.Response:
        parsed = request.get(_GRAPHQL_KEY)
        if parsed is None:  # pragma: no cover - the gate always reads the body first
            return _graphql_error("Body must be a JSON object.", "BAD_REQUEST")
        limit = self.config.max_aliases
        if parsed.error is None and limit and len(parsed.products) > limit:
            self.stats.too_complex += 1
            message = (
                f"Query is too complex: {len(parsed.products)} product lookups exceed the "
                f"limit of {limit}."
                if self.config.state_limit
                else "Query is too complex."
            )
            return _graphql_error(message, "QUERY_TOO_COMPLEX")
        schema = graphql_api.schema_for(
            self.config.layout,
            self._renamed_fields(),
            product_non_null=self.config.product_non_null,
            retyped="categories-retyped" in self.config.breaks,
        )
        status, body = graphql_api.execute(schema, parsed, _Resolvers(self))
        if self.config.cut_off_skus and not self.config.cut_off_skus.isdisjoint(parsed.skus):
            self.stats.faults["cut_off_answer"] += 1
            whole = dumps(body)
            return web.Response(
                body=whole[: len(whole) // 2], status=status, content_type="application/json"
            )
        return _json(body, status)

    def _renamed_fields(self) -> frozenset[str]:
        """GraphQL root fields the ``breaks`` rename (see ``graphql_api.RENAMED_FIELDS``)."""
        breaks = self.config.breaks
        return frozenset(
            name
            for mode, name in (
                ("operation-renamed", "product"),
                ("categories-moved", "productCategories"),
            )
            if mode in breaks
        )

    def _rotate_key(self) -> None:
        """A new 32-hex key derived from the old one; the old one gets 401 from now on."""
        config = self.config
        config.api_key = hashlib.sha256(f"rotated:{config.api_key}".encode()).hexdigest()[:32]
        self.stats.key_rotations += 1
        self._key_uses = 0

    async def product_page(self, request: web.Request) -> web.StreamResponse:
        """``/product/{slug}-{sku}``: the page, or 404 for unknown and delisted SKUs."""
        slug = request.match_info["slug"]
        match = _SKU_IN_SLUG.search(slug)
        config = self.config
        product = self.catalogue.active(int(match.group(1))) if match else None
        if product is None or product.sku in config.not_found_skus:
            return self._not_found(request)
        shown = product
        if product.sku in config.mismatch_skus:
            skus = sorted(self.catalogue.products)
            shown = self.catalogue.products[skus[(skus.index(product.sku) + 1) % len(skus)]]
        record = product_record(shown, self.catalogue, with_gtin=config.page_gtin)
        key, options = self._page_key()
        text = self.pages.product(
            product,
            record,
            slug,
            config.build_id,
            _base_url(request),
            key,
            config.page_gtin,
            config.layout,
            **options,
        )
        return _html(text)

    async def categories(self, request: web.Request) -> web.StreamResponse:
        """The browse tree (``pageProps.allProductCategories.catalogGroupView``)."""
        stale = request.match_info["build_id"] != self.config.build_id
        if stale or {"categories-moved", "categories-retyped"} & set(self.config.breaks):
            return web.Response(status=404, text="404: This page could not be found.")
        tree = {"catalogGroupView": category_tree(self.catalogue), "excludedCategoryIds": []}
        return _json({"pageProps": {"allProductCategories": tree}, "__N_SSP": True})

    async def listing(self, request: web.Request) -> web.StreamResponse:
        """One listing page: 48 product rows plus ads; nothing past page 104; 404 if stale."""
        config = self.config
        path = request.match_info["path"]
        if request.match_info["build_id"] != config.build_id or not path.endswith(".json"):
            return web.Response(status=404, text="404: This page could not be found.")
        path = path.removesuffix(".json").strip("/")
        try:
            page = max(1, int(request.query.get("page", "1")))
        except ValueError:
            page = 1
        self.stats.listings[path][page] += 1
        self.stats.by_store[request.query.get("storeId", config.default_store)] += 1
        node = self.catalogue.tree.by_path.get(path)
        if node is None or not self.catalogue.in_category(path):
            return _json({"notFound": True}, 404)
        base = _base_url(request)
        key = (path, page, config.listing_page_size, config.listing_max_pages, base)
        body = self._listing_cache.get(key)
        if body is None:
            payload = listing_payload(
                self.catalogue, node, page, config.listing_page_size, config.listing_max_pages, base
            )
            body = dumps(payload)
            self._cache_listing(key, body)
        return web.Response(body=body, content_type="application/json")

    def _cache_listing(self, key: tuple[str, int, int, int, str], body: bytes) -> None:
        cache = self._listing_cache
        while cache and self._listing_cache_bytes + len(body) > LISTING_CACHE_BYTES:
            self._listing_cache_bytes -= len(cache.pop(next(iter(cache))))
        cache[key] = body
        self._listing_cache_bytes += len(body)

    # -- control --------------------------------------------------------------------------------

    async def get_config(self, request: web.Request) -> web.StreamResponse:
        """The current :class:`ReplicaConfig`."""
        return _json(self.config.to_json())

    async def set_config(self, request: web.Request) -> web.StreamResponse:
        """Change config fields from a JSON object; answers the whole new config."""
        try:
            changes = await request.json(loads=json.loads)
            if not isinstance(changes, dict):
                raise ValueError("expected a JSON object")
            self.config.update(changes)
        except ValueError as exc:
            return _json({"error": str(exc)}, 400)
        self.challenge.ttl = self.config.cookie_ttl_s
        if "seed" in changes:
            self._rng = random.Random(self.config.seed)
        self._sequence = 0
        self._key_uses = 0
        self._content_by_client.clear()
        return _json(self.config.to_json())

    async def get_stats(self, request: web.Request) -> web.StreamResponse:
        """Request counts (see :class:`Stats`)."""
        return _json(self.stats.to_json())

    async def reset_stats(self, request: web.Request) -> web.StreamResponse:
        """Zero the stats and the fault counters."""
        self.stats.reset()
        self._sequence = 0
        return _json({"ok": True})

    async def revoke_cookies(self, request: web.Request) -> web.StreamResponse:
        """Invalidate every bot-check cookie handed out so far (a browser must solve it again)."""
        self.challenge.rotate()
        return _json({"ok": True})


MAINTENANCE_PAGE = (
    '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Coles | We\'ll be '
    "back soon</title></head><body><main><h1>We're making some improvements</h1><p>Coles "
    "Online is currently unavailable while we carry out scheduled maintenance. Please try "
    "again shortly.</p></main></body></html>"
)


def _failing_field(_info: Any) -> None:
    """A field whose resolver fails, as a server's backend timing out on one field would."""
    raise GraphQLError(
        "Failed to fetch gtin: upstream timeout", extensions={"code": "INTERNAL_SERVER_ERROR"}
    )


class _Resolvers:
    """What the GraphQL schema asks of the site: records from the catalogue, the tree."""

    def __init__(self, site: ReplicaSite) -> None:
        self.site = site

    def product(self, product_id: str, store: str) -> dict[str, Any]:
        """The ``GetProductDetails`` record (``gtin`` as held), or "Product not found"."""
        site = self.site
        product = site.catalogue.active(int(product_id)) if product_id.isdigit() else None
        if product is not None and product.sku in site.config.not_found_skus:
            site.stats.faults["not_found_sku"] += 1
            product = None
        if int(store) in site.config.unknown_stores:
            site.stats.faults["invalid_store"] += 1
            raise GraphQLError(
                f"Invalid StoreId: COL:{store}", extensions={"code": "BAD_USER_INPUT"}
            )
        if product is None:
            raise GraphQLError(f"Product {product_id} not found", extensions={"code": "NOT_FOUND"})
        record = product_record(product, site.catalogue, with_gtin=True)
        if "gtin-removed" in site.config.breaks:
            record["gtin"] = None
        if product.sku in site.config.gtin_error_skus:
            site.stats.faults["gtin_error"] += 1
            record["gtin"] = _failing_field  # graphql-core calls it: a field error, with path
        record.setdefault("availabilityStatus", None)
        record.setdefault("collectableCampaign", "")
        record.setdefault("nutritionalClaims", [])
        record.setdefault("variations", {"total": 0, "byVarieties": [], "bySizes": []})
        return record

    def product_categories(self, store: str) -> dict[str, Any]:
        """The tree ``browse.json`` serves, as ``productCategories``."""
        tree = category_tree(self.site.catalogue)

        def typed(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
            for node in nodes:
                node["type"] = "CATALOG"
                node["subType"] = None
                typed(node.get("catalogGroupView") or [])
            return nodes

        return {"catalogGroupView": typed(tree), "excludedCategoryIds": []}


SITE_KEY = web.AppKey("replica", ReplicaSite)
"""``app[SITE_KEY]`` is the application's :class:`ReplicaSite` (config, stats, catalogue)."""


def make_app(
    catalogue: Catalogue,
    config: ReplicaConfig | None = None,
    woolworths_config: woolworths.WoolworthsConfig | None = None,
) -> web.Application:
    """The replica site for ``catalogue``; ``app[SITE_KEY]`` is its :class:`ReplicaSite`.
    Woolworths is served under ``/woolworths`` (:mod:`.woolworths`)."""
    return ReplicaSite(catalogue, config, woolworths_config).app()
