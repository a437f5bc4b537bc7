"""The replica site as an aiohttp application, with switchable misbehaviour and request stats.

One asyncio process answers thousands of requests a second on loopback, so it is never the
bottleneck of a crawl benchmark. Behaviour (bot check, rate limits, outages, slow answers,
broken SKUs) can be set at start-up or changed while running through ``/__replica__/config``;
``/__replica__/stats`` tells tests what the crawler actually asked for.

Endpoints (the contract in the project's shared README):

- ``GET /``: home page, ``__NEXT_DATA__`` with ``buildId`` and ``runtimeConfig``.
- ``POST /api/graphql``: ``GetProduct`` lookups (needs ``ocp-apim-subscription-key``).
- ``GET /product/{slug}-{sku}``: product page (no GTIN unless ``page_gtin``).
- ``GET /_next/data/{buildId}/en/browse.json``: the category tree.
- ``GET /_next/data/{buildId}/en/browse/{path}.json?page=N&storeId=0584``: listing pages.
- ``GET /robots.txt``; ``GET|POST /__replica__/...``: control and stats (never challenged).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .challenge import COOKIE_NAME, SCRIPT_PREFIX, Challenge
from .pages import Pages, category_tree, dumps, listing_payload, product_record

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

_GRAPHQL_KEY = web.RequestKey("replica_graphql", object)
_SKU_IN_SLUG = re.compile(r"(?:^|-)(\d+)$")
_STORE = re.compile(r"^(?:COL:)?(\w+)$")


ERROR_KINDS = ("429", "503", "timeout", "reset")


@dataclass
class ReplicaConfig:
    """Behaviours of the replica; every field can be changed at runtime (``/__replica__/config``).

    Counters (``*_every``) count content requests (home, GraphQL, product pages, listings, the
    category tree) that got past the bot check, and restart when the config or stats change.
    """

    api_key: str = DEFAULT_API_KEY
    build_id: str = DEFAULT_BUILD_ID
    challenge: bool = False  # JavaScript bot check on every content request
    cookie_ttl_s: float | None = None  # how long an accepted reese84 cookie stays valid
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
    mismatch_skus: set[int] = field(default_factory=set)  # page's __NEXT_DATA__ is another SKU
    page_gtin: bool = False  # product pages carry the GTIN (to test a page-based source)
    robots_disallow: list[str] = field(default_factory=lambda: ["/checkout", "/account"])
    listing_page_size: int = 48
    listing_max_pages: int = 104
    default_store: str = "0584"

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
            "uptime_s": round(time.time() - self.started, 3),
        }


def _json(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        body=dumps(data), status=status, headers=headers, content_type="application/json"
    )


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html")


def _graphql_error(message: str, code: str, status: int = 400) -> web.Response:
    return _json({"errors": [{"message": message, "extensions": {"code": code}}]}, status)


def _base_url(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


class ReplicaSite:
    """Handlers plus the state they share: catalogue, config, stats and the bot check."""

    def __init__(self, catalogue: Catalogue, config: ReplicaConfig | None = None) -> None:
        self.catalogue = catalogue
        self.config = config if config is not None else ReplicaConfig()
        self.stats = Stats()
        self.challenge = Challenge(ttl=self.config.cookie_ttl_s)
        self.pages = Pages()
        self._sequence = 0
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
        add("GET", "/__replica__/config", self.get_config)
        add("POST", "/__replica__/config", self.set_config)
        add("GET", "/__replica__/stats", self.get_stats)
        add("POST", "/__replica__/reset-stats", self.reset_stats)
        add("POST", "/__replica__/revoke-cookies", self.revoke_cookies)
        return app

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Count, then (for content) delay, bot-check and inject faults before the handler."""
        kind = request.match_info.route.name
        if kind not in KINDS:
            return await handler(request)
        stats = self.stats
        stats.requests += 1
        stats.by_kind[kind] += 1
        response = await self._gate(request, kind)
        if response is None:
            response = await handler(request)
        stats.by_status[response.status] += 1
        return response

    async def _gate(self, request: web.Request, kind: str) -> web.StreamResponse | None:
        if kind not in CONTENT_KINDS:
            return None
        config = self.config
        sku = await self._sku_of(request, kind)
        if config.delay_ms:
            await asyncio.sleep(config.delay_ms / 1000)
        if config.challenge:
            blocked = self._bot_check(request)
            if blocked is not None:
                return blocked
        if sku is not None and sku in config.fail_skus:
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

    async def _sku_of(self, request: web.Request, kind: str) -> int | None:
        """The SKU a request is about (parsing a GraphQL body once), counted in the stats."""
        sku: int | None = None
        if kind == "product_page":
            match = _SKU_IN_SLUG.search(request.match_info["slug"])
            sku = int(match.group(1)) if match else None
        elif kind == "graphql":
            parsed = await self._parse_graphql(request)
            request[_GRAPHQL_KEY] = parsed
            if isinstance(parsed, tuple):
                sku, store = parsed
                self.stats.by_store[store] += 1
        if sku is not None:
            self.stats.by_sku[sku] += 1
            self.stats.by_sku_kind[kind][sku] += 1
        return sku

    def _bot_check(self, request: web.Request) -> web.Response | None:
        state = self.challenge.verify(request.cookies.get(COOKIE_NAME))
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
        for name, value in self.challenge.visitor_cookies().items():
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

    def _not_found(self, request: web.Request) -> web.Response:
        config = self.config
        text = self.pages.not_found(config.build_id, _base_url(request), config.api_key)
        return _html(text, 404)

    # -- content --------------------------------------------------------------------------------

    async def home(self, request: web.Request) -> web.StreamResponse:
        """Home page with ``buildId``, the subscription key and the GraphQL URL."""
        config = self.config
        return _html(self.pages.home(config.build_id, _base_url(request), config.api_key))

    async def robots(self, request: web.Request) -> web.StreamResponse:
        """robots.txt: everything allowed but ``robots_disallow``."""
        lines = ["User-agent: *", *(f"Disallow: {path}" for path in self.config.robots_disallow)]
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")

    async def challenge_script(self, request: web.Request) -> web.StreamResponse:
        """The script the bot-check page loads; running it sets the ``reese84`` cookie."""
        script = self.challenge.script(request.match_info["nonce"])
        if script is None:
            return web.Response(status=404, text="not found")
        self.stats.challenge["scripts_served"] += 1
        return web.Response(
            text=script,
            content_type="application/javascript",
            headers={"Cache-Control": "no-store"},
        )

    async def _parse_graphql(self, request: web.Request) -> tuple[int, str] | web.Response:
        """(sku, store) from a ``GetProduct`` body, or the 400 answer for a bad body."""
        try:
            body = await request.json(loads=json.loads)
        except ValueError:
            return _graphql_error("Body must be a JSON object.", "BAD_REQUEST")
        if not isinstance(body, dict):
            return _graphql_error("Body must be a JSON object.", "BAD_REQUEST")
        operation = body.get("operationName")
        if operation not in (None, "GetProduct"):
            return _graphql_error(f'Unknown operation named "{operation}".', "BAD_REQUEST")
        variables = body.get("variables")
        product_id = variables.get("productId") if isinstance(variables, dict) else None
        if isinstance(product_id, bool) or not isinstance(product_id, (int, str)):
            return _graphql_error('Variable "$productId" is required.', "BAD_USER_INPUT")
        if isinstance(product_id, str) and not product_id.strip().isdigit():
            return _graphql_error('Variable "$productId" must be a SKU.', "BAD_USER_INPUT")
        store_id = variables.get("storeId") if isinstance(variables, dict) else None
        store = self.config.default_store
        if store_id is not None:
            match = _STORE.match(str(store_id))
            if match is None:
                return _graphql_error('Variable "$storeId" is invalid.', "BAD_USER_INPUT")
            store = match.group(1)
        return int(product_id), store

    async def graphql(self, request: web.Request) -> web.StreamResponse:
        """``GetProduct``: the record with its ``gtin`` as held, or ``product: null``."""
        key = request.headers.get("ocp-apim-subscription-key")
        if key != self.config.api_key:
            problem = "missing" if not key else "invalid"
            message = (
                f"Access denied due to {problem} subscription key. Make sure to include a valid "
                "subscription key when making requests to an API."
            )
            return _json({"statusCode": 401, "message": message}, 401)
        parsed = request.get(_GRAPHQL_KEY)
        if parsed is None:
            parsed = await self._parse_graphql(request)
        if isinstance(parsed, web.Response):
            return parsed
        sku, _store = parsed
        product = self.catalogue.active(sku)
        if product is None or sku in self.config.not_found_skus:
            if product is not None:
                self.stats.faults["not_found_sku"] += 1
            return _json({"data": {"product": None}})
        record = product_record(product, self.catalogue, with_gtin=True)
        return _json({"data": {"product": record}})

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
        text = self.pages.product(
            product,
            record,
            slug,
            config.build_id,
            _base_url(request),
            config.api_key,
            config.page_gtin,
        )
        return _html(text)

    async def categories(self, request: web.Request) -> web.StreamResponse:
        """The browse tree (``pageProps.allProductCategories.catalogGroupView``)."""
        if request.match_info["build_id"] != self.config.build_id:
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


SITE_KEY = web.AppKey("replica", ReplicaSite)
"""``app[SITE_KEY]`` is the application's :class:`ReplicaSite` (config, stats, catalogue)."""


def make_app(catalogue: Catalogue, config: ReplicaConfig | None = None) -> web.Application:
    """The replica site for ``catalogue``; ``app[SITE_KEY]`` is its :class:`ReplicaSite`."""
    return ReplicaSite(catalogue, config).app()
