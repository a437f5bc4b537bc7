"""Everything the project knows about the shape of the retailer's pages and JSON.

Pure functions, no Scrapy: the one small, replaceable place to change when the live
site changes. ``docs/site.md`` lists each point with where and when it was seen. The site
as public captures show it in late 2026, with the 2024 layout still understood:

* ``GET /``: the subscription key in an inline ``window.__RUNTIME_CONFIG__={...}`` script
  (2026), or in ``__NEXT_DATA__.runtimeConfig`` (2024, with ``COLES_GRAPHQL_API_URL``);
  ``buildId`` in ``__NEXT_DATA__``. Without a published GraphQL URL: ``{base}/api/graphql``.
* ``POST {graphql}`` ``GetProductDetails`` (``$productId: String!``, ``$storeId: BrandedId!``
  as ``COL:<store>``), several SKUs per document as aliases ``p0``, ``p1``...;
  ``data.product.gtin`` is a string. An unknown SKU: an ``errors[]`` entry saying "not
  found" and a null product. Validation and bad-input errors mean the site changed.
* ``GetShopProductsMenu`` (``productCategories``): the category tree (2026); the older
  ``/_next/data/{buildId}/en/browse.json`` still serves it in the 2024 layout.
* ``GET /product/{slug}-{sku}``: ``__NEXT_DATA__`` ``props.pageProps.product`` and a
  schema.org JSON-LD ``Product`` (``gtin`` seen there in 2025; never trust another SKU's).
* ``GET /_next/data/{buildId}/en/browse/{path}.json?slug={path}&page=N&storeId=0584``: a
  listing page (``pageProps.searchResults``: ``noOfResults``, ``results[]`` with product rows
  and ad rows); 48 rows a page and no page past 104; a stale ``buildId`` answers 404;
* Imperva (Incapsula) protection, served instead of any of these, whatever the status: the
  JavaScript challenge ("Pardon Our Interruption", solved by a browser) and the block page
  ("Request unsuccessful. Incapsula incident ID", a verdict on the client's address).
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urljoin

import orjson

from colesbarcodes.gtin import Gtin, InvalidGtin, parse_gtin, shown

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "BOT_CHECK_COOKIE_PREFIXES",
    "CATEGORIES_QUERY",
    "DEFAULT_GRAPHQL_PATH",
    "GRAPHQL_QUERY",
    "KEY_IN_NEXT_DATA",
    "KEY_IN_PAGE",
    "KEY_IN_RUNTIME_CONFIG",
    "PROTECTION_BLOCK",
    "PROTECTION_CHALLENGE",
    "Category",
    "CategoryTreeRefused",
    "GraphQLAnswer",
    "GraphQLProblem",
    "ListingPage",
    "ProblemKind",
    "ProductRecord",
    "Reading",
    "SiteConfig",
    "SiteFormatError",
    "SkuReading",
    "categories_graphql_body",
    "categories_path",
    "classify_errors",
    "describe_answer",
    "graphql_body",
    "graphql_headers",
    "is_block_page",
    "is_bot_check",
    "listing_line",
    "listing_page_count",
    "listing_path",
    "listing_plan",
    "parse_build_id",
    "parse_category_tree",
    "parse_graphql_category_tree",
    "parse_graphql_products",
    "parse_listing",
    "parse_next_data",
    "parse_product_page",
    "parse_site_config",
    "product_alias",
    "product_page_path",
    "protection_kind",
    "read_product_page",
]

BOT_CHECK_COOKIE_PREFIXES = ("visid_incap_", "incap_ses_", "nlbi_", "reese84")
_BOT_CHECK_MARKERS = (
    b"Pardon Our Interruption",
    b"onProtectionInitialized",
    b"reeseSkipExpirationCheck",
    b"_Incapsula_Resource",
)
_NEXT_DATA_RE = re.compile(
    rb'<script[^>]*\bid="__NEXT_DATA__"[^>]*>(.*?)</script>', re.DOTALL | re.IGNORECASE
)
_JSON_LD_RE = re.compile(
    rb'<script[^>]*type="application/ld\+json"[^>]*>(.*?)</script>', re.DOTALL | re.IGNORECASE
)
_SLUG_RE = re.compile(r"[^a-z0-9]+")

PROTECTION_CHALLENGE = "challenge"
PROTECTION_BLOCK = "block"
KEY_IN_RUNTIME_CONFIG = "__RUNTIME_CONFIG__"
KEY_IN_NEXT_DATA = "__NEXT_DATA__"
KEY_IN_PAGE = "page"
DEFAULT_GRAPHQL_PATH = "/api/graphql"  # same origin, when the page publishes no URL (2026)
_RUNTIME_CONFIG_RE = re.compile(
    rb"window\.__RUNTIME_CONFIG__\s*=\s*(\{.*?\})\s*;?\s*</script>", re.DOTALL
)
_KEY_ANYWHERE_RE = re.compile(rb'"BFF_API_SUBSCRIPTION_KEY"\s*:\s*"([0-9a-f]{32})"')
# A sparse selection: the crawl reads these fields only, which keeps many products per
# document below the server's complexity limit.
_FRAGMENT = "ProductBarcode"
_FRAGMENT_TEXT = f"fragment {_FRAGMENT} on Product {{ id name brand size gtin }}"
GRAPHQL_QUERY = (
    "query GetProductDetails($productId: String!, $storeId: BrandedId!) { "
    f"product(productId: $productId, storeId: $storeId) {{ ...{_FRAGMENT} }} }} {_FRAGMENT_TEXT}"
)


class SiteFormatError(ValueError):
    """A page or JSON document that does not have the shape the site is known to serve."""


@dataclass(frozen=True, slots=True)
class SiteConfig:
    build_id: str
    api_key: str
    graphql_url: str
    key_source: str = KEY_IN_NEXT_DATA  # where the key was found (for the log and site-check)


@dataclass(frozen=True, slots=True)
class ProductRecord:
    """What the site says about one SKU; ``gtin`` is the raw value, not validated yet."""

    sku: str
    name: str | None = None
    brand: str | None = None
    size: str | None = None
    gtin: object = None
    has_gtin_field: bool = False


def is_bot_check(body: bytes) -> bool:
    """True for the bot-check page, whatever status and content type it came with."""
    head = body[:20_000]
    return sum(marker in head for marker in _BOT_CHECK_MARKERS) >= 2


def parse_next_data(html: bytes) -> dict[str, Any]:
    match = _NEXT_DATA_RE.search(html)
    if match is None:
        raise SiteFormatError("no __NEXT_DATA__ script in the page")
    try:
        data = orjson.loads(match.group(1))
    except orjson.JSONDecodeError as exc:
        raise SiteFormatError(f"__NEXT_DATA__ is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SiteFormatError("__NEXT_DATA__ is not an object")
    return data


def _runtime_config_script(html: bytes) -> dict[str, Any] | None:
    match = _RUNTIME_CONFIG_RE.search(html)
    if match is None:
        return None
    try:
        data = orjson.loads(match.group(1))
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def parse_site_config(html: bytes, page_url: str) -> SiteConfig:
    """The build id, API key and GraphQL URL that the site's own pages publish.

    The key is read from ``window.__RUNTIME_CONFIG__`` (2026) or ``__NEXT_DATA__``'s
    ``runtimeConfig`` (2024), whichever the page has, and last from anywhere in the page
    (the pattern public clients use); the GraphQL URL is the published one, else
    ``{origin}/api/graphql``. ``build_id`` is empty when the page has no ``__NEXT_DATA__``.
    """
    try:
        next_data: dict[str, Any] = parse_next_data(html)
    except SiteFormatError:
        next_data = {}
    sources: list[tuple[str, dict[str, Any]]] = []
    script = _runtime_config_script(html)
    if script is not None:
        sources.append((KEY_IN_RUNTIME_CONFIG, script))
    runtime = next_data.get("runtimeConfig")
    if isinstance(runtime, dict):
        sources.append((KEY_IN_NEXT_DATA, runtime))
    key, where, graphql = None, "", None
    for name, config in sources:
        value = config.get("BFF_API_SUBSCRIPTION_KEY")
        if key is None and isinstance(value, str) and value.strip():
            key, where = value.strip(), name
        url = config.get("COLES_GRAPHQL_API_URL")
        if graphql is None and isinstance(url, str) and url.strip():
            graphql = url.strip()
    if key is None:
        match = _KEY_ANYWHERE_RE.search(html)
        if match is not None:
            key, where = match.group(1).decode(), KEY_IN_PAGE
    if key is None:
        raise SiteFormatError(
            "no BFF_API_SUBSCRIPTION_KEY in the page (looked in window.__RUNTIME_CONFIG__, "
            "__NEXT_DATA__.runtimeConfig and the whole page)"
        )
    build_id = next_data.get("buildId")
    return SiteConfig(
        build_id.strip() if isinstance(build_id, str) else "",
        key,
        urljoin(page_url, graphql or DEFAULT_GRAPHQL_PATH),
        where,
    )


def graphql_headers(base_url: str, api_key: str) -> dict[str, str]:
    """The headers the site's own GraphQL client sends (captured 2026-10)."""
    base = base_url.rstrip("/")
    return {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "ocp-apim-subscription-key": api_key,
        "x-api-version": "2",
        "dsch-channel": "coles.online.1site.desktop",
        "Origin": base,
        "Referer": f"{base}/",
    }


def product_alias(index: int, count: int) -> str:
    """The response key of the ``index``-th SKU of a document of ``count`` SKUs."""
    return "product" if count == 1 else f"p{index}"


def graphql_body(skus: str | Sequence[str], store_id: str) -> bytes:
    """A ``GetProductDetails`` document for one SKU (the site's own variables) or several
    (one aliased ``product`` field each, ``p0``, ``p1``...), all of one store, asking only
    for the fields the crawl reads."""
    skus = [skus] if isinstance(skus, str) else [str(sku) for sku in skus]
    if not skus:
        raise ValueError("no SKUs to ask for")
    store = f"COL:{store_id}"
    if len(skus) == 1:
        return orjson.dumps(
            {
                "operationName": "GetProductDetails",
                "variables": {"productId": skus[0], "storeId": store},
                "query": GRAPHQL_QUERY,
            }
        )
    declared = ", ".join(f"$p{i}: String!" for i in range(len(skus)))
    fields = " ".join(
        f"p{i}: product(productId: $p{i}, storeId: $storeId) {{ ...{_FRAGMENT} }}"
        for i in range(len(skus))
    )
    variables: dict[str, str] = {"storeId": store}
    variables.update({f"p{i}": sku for i, sku in enumerate(skus)})
    return orjson.dumps(
        {
            "operationName": "GetProductDetails",
            "variables": variables,
            "query": (
                f"query GetProductDetails($storeId: BrandedId!, {declared}) {{ {fields} }} "
                + _FRAGMENT_TEXT
            ),
        }
    )


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _record(sku: str, product: dict[str, Any]) -> ProductRecord:
    return ProductRecord(
        sku=sku,
        name=_text(product.get("name")),
        brand=_text(product.get("brand")),
        size=_text(product.get("size")),
        gtin=product.get("gtin"),
        has_gtin_field="gtin" in product,
    )


class ProblemKind(enum.StrEnum):
    """Why a whole GraphQL document went unanswered."""

    TOO_COMPLEX = "too_complex"  # too many products in one document: ask for fewer
    REJECTED = "rejected"  # validation or bad input: the site changed, asking again won't help
    SERVER = "server"  # the server failed: worth another try
    UNREADABLE = "unreadable"  # no GraphQL answer at all (HTML, empty, cut off, wrong shape)


_STATED_LIMIT_RE = re.compile(r"(?:limit|maximum|max)(?:\s+(?:is|of))?\s*:?\s*(\d+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class GraphQLProblem:
    kind: ProblemKind
    message: str

    @property
    def stated_limit(self) -> int | None:
        """The number of products a "too complex" refusal says is allowed, if it says."""
        match = _STATED_LIMIT_RE.search(self.message)
        return int(match.group(1)) if match else None


class Reading(enum.StrEnum):
    """What an answer says of one SKU: one of the four facts, or *not understood*.

    Only the first four may be stored as outcomes; ``not_understood`` is asked again and,
    when it stays so, ends as ``failed`` (a retry file), never as a fact.
    """

    FOUND = "found"
    NO_BARCODE = "no_barcode"
    NOT_FOUND = "not_found"
    INVALID_BARCODE = "invalid_barcode"
    NOT_UNDERSTOOD = "not_understood"


@dataclass(frozen=True, slots=True)
class SkuReading:
    """One SKU's reading, why, and what came with it.

    ``record`` is there for found, no_barcode and invalid_barcode; ``gtin`` for found.
    ``rejected``: an error of the site's contract (bad input, validation, "Invalid
    StoreId") named this SKU, so asking again cannot help. ``unreadable``: the answer for it
    does not have the shape the site is known to send (not a server's error).
    """

    reading: Reading
    reason: str
    record: ProductRecord | None = None
    gtin: Gtin | None = None
    rejected: bool = False
    unreadable: bool = False


@dataclass(slots=True)
class GraphQLAnswer:
    """One ``GetProductDetails`` answer, read whole.

    Either ``problem`` (the document as a whole went unanswered: nothing is known of its
    SKUs), or a reading for SKUs the answer speaks of, with the rest in ``ask_again``:
    SKUs whose answer was lost because another SKU's error nulled the whole document (they
    cost nothing: ask for them again at once).
    """

    readings: dict[str, SkuReading] = field(default_factory=dict)
    ask_again: list[str] = field(default_factory=list)
    problem: GraphQLProblem | None = None


_TOO_COMPLEX_RE = re.compile(
    r"too (?:complex|large|big|many)|complexity|query cost|max(?:imum)? depth", re.IGNORECASE
)
_REJECTED_CODES = frozenset(
    {
        "GRAPHQL_VALIDATION_FAILED",
        "GRAPHQL_PARSE_FAILED",
        "BAD_USER_INPUT",
        "BAD_REQUEST",
        "VALIDATION_ERROR",
    }
)
_REJECTED_RE = re.compile(
    r"invalid storeid|cannot query field|unknown (?:type|argument|operation)|"
    r"variable \"?\$|expected type|syntax error",
    re.IGNORECASE,
)
_NOT_FOUND_RE = re.compile(r"not found", re.IGNORECASE)
# Fields whose error spoils the barcode itself; an error on another field (a name, a
# brand) leaves a found barcode standing, but never an absent one.
_BARCODE_FIELDS = frozenset({"gtin", "id"})


def _error_text(error: Any) -> tuple[str, str]:
    """(message, code) of one GraphQL error entry."""
    if not isinstance(error, dict):
        return str(error)[:300], ""
    extensions = error.get("extensions")
    code = extensions.get("code") if isinstance(extensions, dict) else None
    return str(error.get("message") or "")[:300], str(code or "")


def _is_rejection(text: str, code: str) -> bool:
    return code.upper() in _REJECTED_CODES or _REJECTED_RE.search(text) is not None


def classify_errors(errors: Any, status: int = 200) -> GraphQLProblem:
    """What a document-level refusal means: too big, rejected (site change), or a failure."""
    entries = errors if isinstance(errors, list) else [errors] if errors else []
    texts = [_error_text(error) for error in entries]
    message = "; ".join(text for text, _ in texts if text)[:300] or f"HTTP {status}"
    codes = {code.upper() for _, code in texts}
    too_complex = any(_TOO_COMPLEX_RE.search(text) for text, _ in texts) or any(
        "COMPLEX" in code or "COST" in code for code in codes
    )
    if status == 413 or too_complex:
        return GraphQLProblem(ProblemKind.TOO_COMPLEX, message)
    if any(_is_rejection(text, code) for text, code in texts):
        return GraphQLProblem(ProblemKind.REJECTED, message)
    if 400 <= status < 500 and texts:
        return GraphQLProblem(ProblemKind.REJECTED, message)
    return GraphQLProblem(ProblemKind.SERVER, message)


def describe_answer(status: int, content_type: str, body: bytes) -> str:
    """What an answer was, for a person: status, content type, size and its first bytes."""
    head = body[:120].decode("utf-8", "replace")
    head = re.sub(r"\s+", " ", head).strip()
    size = f"{len(body)} bytes" if body else "empty body"
    shown_type = content_type.split(";")[0].strip() or "no content type"
    return f"HTTP {status}, {shown_type}, {size}" + (f': "{head}"' if head else "")


def _unreadable(what: str, status: int, content_type: str, body: bytes) -> GraphQLAnswer:
    seen = describe_answer(status, content_type, body)
    return GraphQLAnswer(problem=GraphQLProblem(ProblemKind.UNREADABLE, f"{what} ({seen})"))


def _not_understood(reason: str, *, rejected: bool = False, unreadable: bool = False) -> SkuReading:
    return SkuReading(
        Reading.NOT_UNDERSTOOD, reason[:300], rejected=rejected, unreadable=unreadable
    )


@dataclass(slots=True)
class _AliasErrors:
    """The errors an answer attributes to one alias (by the first element of ``path``)."""

    texts: list[str] = field(default_factory=list)
    on_barcode: bool = False  # one names the alias itself, its gtin or its id
    rejected: bool = False  # one is an error of the site's contract

    def add(self, text: str, code: str, path: list[Any]) -> None:
        self.texts.append(text or code or "an error without a message")
        if len(path) == 1 or path[1] in _BARCODE_FIELDS:
            self.on_barcode = True
        if _is_rejection(text, code) and not _NOT_FOUND_RE.search(text):
            self.rejected = True  # "Product 1 not found" may come as bad input: an answer

    @property
    def message(self) -> str:
        return "; ".join(self.texts)[:300]

    @property
    def says_not_found(self) -> bool:
        return bool(self.texts) and all(_NOT_FOUND_RE.search(text) for text in self.texts)


def _read_record(sku: str, product: dict[str, Any], errors: _AliasErrors | None) -> SkuReading:
    """The reading of one product record, given the errors that name its alias."""
    if errors is not None and errors.rejected:
        return _not_understood(f"the site refused it: {errors.message}", rejected=True)
    if errors is not None and errors.on_barcode:
        return _not_understood(f"the site failed on its record: {errors.message}")
    product_id = product.get("id")
    if isinstance(product_id, bool) or not isinstance(product_id, int | str):
        return _not_understood("the record has no usable id", unreadable=True)
    if str(product_id).strip() != sku:
        return _not_understood(f"answered for SKU {shown(product_id)}, not {sku}", unreadable=True)
    if "gtin" not in product:
        return _not_understood(
            "the record has no gtin field (the document asks for it)", unreadable=True
        )
    raw = product["gtin"]
    if isinstance(raw, bool) or not isinstance(raw, str | int | type(None)):
        return _not_understood(f"gtin is a {type(raw).__name__}", unreadable=True)
    record = _record(sku, product)
    try:
        gtin = parse_gtin(raw)
    except InvalidGtin as exc:
        return SkuReading(Reading.INVALID_BARCODE, exc.reason, record)
    if gtin is not None:
        return SkuReading(Reading.FOUND, "the product record's gtin", record, gtin)
    if errors is not None:  # an error on another field: an absent barcode is not a fact then
        return _not_understood(f"the site failed on part of its record: {errors.message}")
    return SkuReading(Reading.NO_BARCODE, "the product record's gtin is empty", record)


def parse_graphql_products(
    body: bytes, skus: Sequence[str], status: int = 200, content_type: str = ""
) -> GraphQLAnswer:
    """Each SKU's reading in a ``GetProductDetails`` answer for ``skus`` (in document order).

    A total function: whatever the body, it returns, and no SKU gets a fact the answer does
    not state. Errors are attributed by ``path`` (its first element is the alias); an error
    without a path concerns the whole document.

    * not JSON, not an object, no ``data`` nor ``errors``: the problem ``unreadable``;
    * ``data`` null with errors that all name aliases (the null of a non-null root field
      propagated): those aliases are read from their errors, the others are ``ask_again``;
      otherwise the errors are the document's problem (``classify_errors``);
    * an alias whose value is null: ``not_found`` when every error naming it says "not
      found", or no error names it (the 2024 API answered a bare null); else not understood;
    * a record: ``found``/``invalid_barcode`` from its ``gtin`` unless an error names the
      alias, its ``gtin`` or its ``id``; ``no_barcode`` only when its ``gtin`` field is there
      and empty and no error names the alias at all. A record for another SKU, without its
      ``id`` or ``gtin`` field, or of the wrong shape, is not understood.
    """
    wanted = [str(sku) for sku in skus]
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        if status >= 400:
            return GraphQLAnswer(problem=classify_errors(None, status))
        return _unreadable("the answer is not JSON", status, content_type, body)
    if not isinstance(document, dict):
        return _unreadable("the answer is not a JSON object", status, content_type, body)
    data, errors = document.get("data"), document.get("errors")
    if errors is not None and not isinstance(errors, list):
        return _unreadable("errors is not a list", status, content_type, body)
    entries: list[Any] = errors or []
    if data is not None and not isinstance(data, dict):
        return _unreadable("data is not an object", status, content_type, body)
    by_alias: dict[str, _AliasErrors] = {}
    loose: list[Any] = []
    pathless = 0
    aliases = {product_alias(index, len(wanted)) for index in range(len(wanted))}
    for error in entries:
        text, code = _error_text(error)
        path = error.get("path") if isinstance(error, dict) else None
        if isinstance(path, list) and path and isinstance(path[0], str) and path[0] in aliases:
            by_alias.setdefault(path[0], _AliasErrors()).add(text, code, path)
        else:
            loose.append(error)
            pathless += not (isinstance(path, list) and path)
    if (
        len(wanted) == 1
        and loose
        and data is None
        and pathless == len(loose)
        and all(_NOT_FOUND_RE.search(_error_text(error)[0]) for error in loose)
    ):  # a one-product document is its product: "not found" without a path is about it
        # (an error whose path names another field is not: it stays the document's problem)
        for error in loose:
            by_alias.setdefault(product_alias(0, 1), _AliasErrors()).add(*_error_text(error), [""])
        loose = []
    if data is None:
        if not entries:
            if status >= 400:
                return GraphQLAnswer(problem=classify_errors(None, status))
            return _unreadable("the answer has neither data nor errors", status, content_type, body)
        if loose or not by_alias:
            return GraphQLAnswer(problem=classify_errors(entries, status))
        answer = GraphQLAnswer()
        for index, sku in enumerate(wanted):
            alias_errors = by_alias.get(product_alias(index, len(wanted)))
            if alias_errors is None:
                answer.ask_again.append(sku)
            elif alias_errors.rejected:
                answer.readings[sku] = _not_understood(
                    f"the site refused it: {alias_errors.message}", rejected=True
                )
            elif alias_errors.says_not_found:
                answer.readings[sku] = SkuReading(Reading.NOT_FOUND, alias_errors.message)
            else:
                answer.readings[sku] = _not_understood(f"the site failed: {alias_errors.message}")
        return answer
    if loose:
        problem = classify_errors(loose, status)
        if problem.kind is not ProblemKind.SERVER:
            return GraphQLAnswer(problem=problem)
    answer = GraphQLAnswer()
    for index, sku in enumerate(wanted):
        alias = product_alias(index, len(wanted))
        alias_errors = by_alias.get(alias)
        if loose:  # an error without a path concerns every SKU of the document
            texts = "; ".join(_error_text(error)[0] for error in loose)
            answer.readings[sku] = _not_understood(f"the site failed on the document: {texts}")
        elif alias not in data:
            answer.readings[sku] = _not_understood(f"no {alias} in the answer", unreadable=True)
        elif data[alias] is None:
            if alias_errors is None or alias_errors.says_not_found:
                reason = alias_errors.message if alias_errors else "the site has no such product"
                answer.readings[sku] = SkuReading(Reading.NOT_FOUND, reason)
            else:
                answer.readings[sku] = _not_understood(
                    f"the site failed: {alias_errors.message}", rejected=alias_errors.rejected
                )
        elif not isinstance(data[alias], dict):
            answer.readings[sku] = _not_understood(f"{alias} is not an object", unreadable=True)
        else:
            answer.readings[sku] = _read_record(sku, data[alias], alias_errors)
    return answer


def protection_kind(body: bytes) -> str | None:
    """``"challenge"`` (the JavaScript check a browser solves), ``"block"`` (Imperva's
    verdict on the client's address, which no browser solves) or ``None`` for content."""
    if is_bot_check(body):
        return PROTECTION_CHALLENGE
    if is_block_page(body):
        return PROTECTION_BLOCK
    return None


def is_block_page(body: bytes) -> bool:
    """True for Imperva's block (incident) page, whatever status it came with."""
    head = body[:20_000]
    if b"Incapsula incident ID" in head:
        return True
    return b"_Incapsula_Resource" in head and b"incident_id" in head and len(body) < 20_000


def parse_product_page(html: bytes, sku: str) -> ProductRecord:
    """The product of a product page, trusting only a record for the SKU that was asked for.

    The real site has been seen serving a page whose ``__NEXT_DATA__`` product is another
    SKU than its URL and JSON-LD: such a record is ignored, and the JSON-LD used instead.
    """
    product: dict[str, Any] = {}
    try:
        page_product = parse_next_data(html).get("props", {}).get("pageProps", {}).get("product")
    except SiteFormatError:
        page_product = None
    if isinstance(page_product, dict) and str(page_product.get("id")) == str(sku):
        product = dict(page_product)
    for ld in _json_ld_objects(html):
        if (
            not isinstance(ld, dict)
            or ld.get("@type") != "Product"
            or str(ld.get("sku")) != str(sku)
        ):
            continue
        for key in ("gtin13", "gtin14", "gtin12", "gtin8", "gtin"):
            if ld.get(key) and not product.get("gtin"):
                product["gtin"] = ld[key]
        if not product.get("name") and isinstance(ld.get("name"), str):
            product["name"] = ld["name"].split(" | ")[0]
        brand = ld.get("brand")
        if not product.get("brand") and isinstance(brand, dict):
            product["brand"] = brand.get("name")
    if not product:
        raise SiteFormatError(f"no product record for SKU {sku} in the page")
    return _record(sku, product)


def read_product_page(
    body: bytes, sku: str, status: int = 200, content_type: str = ""
) -> SkuReading:
    """The reading of a product page, total like :func:`parse_graphql_products`.

    404 is ``not_found``; a page with a record for ``sku`` gives ``found`` or
    ``invalid_barcode`` from its GTIN, or ``no_barcode`` when it carries none (which only
    says the page shows no barcode: the 2024 page never did); anything else (another
    status, the protection's pages, a page without the SKU's record) is not understood.
    """
    if status == 404:
        return SkuReading(Reading.NOT_FOUND, "no product page")
    seen = describe_answer(status, content_type, body)
    if status != 200 or protection_kind(body) is not None:
        return _not_understood(f"the product page did not answer ({seen})", unreadable=True)
    try:
        record = parse_product_page(body, sku)
    except SiteFormatError as exc:
        return _not_understood(f"{exc} ({seen})", unreadable=True)
    raw = record.gtin
    if isinstance(raw, bool) or not isinstance(raw, str | int | type(None)):
        return _not_understood(f"the page's gtin is a {type(raw).__name__}", unreadable=True)
    try:
        gtin = parse_gtin(raw)
    except InvalidGtin as exc:
        return SkuReading(Reading.INVALID_BARCODE, exc.reason, record)
    if gtin is None:
        return SkuReading(Reading.NO_BARCODE, "the product page shows no barcode", record)
    return SkuReading(Reading.FOUND, "the product page's gtin", record, gtin)


def _json_ld_objects(html: bytes) -> list[Any]:
    """Every JSON-LD object of a page (a script may hold one, a list, or an ``@graph``)."""
    found: list[Any] = []
    for match in _JSON_LD_RE.finditer(html):
        try:
            ld = orjson.loads(match.group(1))
        except orjson.JSONDecodeError:
            continue
        for item in ld if isinstance(ld, list) else [ld]:
            found.append(item)
            if isinstance(item, dict) and isinstance(item.get("@graph"), list):
                found.extend(item["@graph"])
    return found


def product_page_path(sku: str, name: str | None = None) -> str:
    """``/product/{slug}-{sku}``; the site redirects any slug to the right one."""
    slug = _SLUG_RE.sub("-", (name or "product").lower()).strip("-") or "product"
    return f"/product/{slug}-{sku}"


# -- Listings -----------------------------------------------------------------------------

PRODUCT_ROW = "PRODUCT"
_MAX_TEXT = 1000  # the loader quarantines longer texts (colesbarcodes.inbox.lines)
_MAX_MONEY = 1e9  # and absurd prices


@dataclass(frozen=True, slots=True)
class Category:
    """A node of the browse tree; ``path`` is its listing path (``pantry/cereal``)."""

    path: str
    name: str | None = None
    product_count: int | None = None
    children: tuple[Category, ...] = ()

    @property
    def seo_token(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True, slots=True)
class ListingPage:
    """One listing page: the category's size, its product rows (ads left out) and the
    sub-categories it names (to walk when the category is too big to list whole)."""

    total: int
    page_size: int | None
    products: list[dict[str, Any]]
    other_rows: int
    children: tuple[Category, ...]


def _json_object(body: bytes, what: str) -> dict[str, Any]:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise SiteFormatError(f"{what} is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise SiteFormatError(f"{what} is not a JSON object")
    return document


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_build_id(html: bytes) -> str:
    """The Next.js ``buildId`` every ``/_next/data/`` URL needs (from any page's
    ``__NEXT_DATA__``); it changes with each deployment of the site."""
    build_id = parse_next_data(html).get("buildId")
    if not isinstance(build_id, str) or not build_id.strip():
        raise SiteFormatError("__NEXT_DATA__ has no buildId")
    return build_id.strip()


def categories_path(build_id: str) -> str:
    """Path of the category tree document for this build."""
    return f"/_next/data/{quote(build_id, safe='')}/en/browse.json"


def listing_path(build_id: str, path: str, page: int, store_id: str) -> str:
    """Path and query of one listing page of one store."""
    category = quote(path.strip("/"), safe="/")
    return (
        f"/_next/data/{quote(build_id, safe='')}/en/browse/{category}.json"
        f"?slug={category}&page={page}&storeId={quote(store_id, safe='')}"
    )


def _categories(nodes: Any, parent: str) -> tuple[Category, ...]:
    found = []
    for node in nodes if isinstance(nodes, list) else ():
        if not isinstance(node, dict):
            continue
        token = node.get("seoToken")
        if not isinstance(token, str) or not token.strip("/ "):
            continue
        token = token.strip("/ ")
        path = f"{parent}/{token}" if parent else token
        found.append(
            Category(
                path,
                _text(node.get("name")),
                _count(node.get("productCount")),
                _categories(node.get("catalogGroupView"), path),
            )
        )
    return tuple(found)


def parse_category_tree(body: bytes) -> tuple[Category, ...]:
    """The departments of ``browse.json``, each with its sub-categories (listing paths)."""
    document = _json_object(body, "category tree")
    try:
        nodes = document["pageProps"]["allProductCategories"]["catalogGroupView"]
    except (KeyError, TypeError):
        raise SiteFormatError("no pageProps.allProductCategories.catalogGroupView") from None
    tree = _categories(nodes, "")
    if not tree:
        raise SiteFormatError("the category tree is empty")
    return tree


# The site's own declarations (2026; the same in every public client seen): a GraphQL server
# validates a document before it runs it and refuses it whole when a variable's type is not the
# argument's (``Boolean`` where it is ``Boolean!``) or a fragment names a type it lacks.
CATEGORIES_QUERY = (
    "query GetShopProductsMenu($storeId: BrandedId!, $withCampaignLinks: Boolean!, "
    "$campaignCount: Int) { menuItems: productCategories(storeId: $storeId, "
    "withCampaignLinks: $withCampaignLinks, campaignCount: $campaignCount) { ...MenuItems } } "
    "fragment MenuItems on ProductCategories { restrictedIds: excludedCategoryIds "
    "items: catalogGroupView { ...MenuItem childItems: catalogGroupView { ...MenuItem "
    "childItems: catalogGroupView { ...MenuItem childItems: catalogGroupView { ...MenuItem "
    "} } } } } "
    "fragment MenuItem on ProductCategory "
    "{ id level name originalName productCount seoToken type subType }"
)


class CategoryTreeRefused(SiteFormatError):
    """``GetShopProductsMenu`` answered no tree because the whole document was refused or
    failed: ``problem`` says which (``REJECTED``: the site no longer takes the document, so
    the site changed) in the server's own words."""

    def __init__(self, problem: GraphQLProblem) -> None:
        verb = "refused" if problem.kind is ProblemKind.REJECTED else "failed"
        super().__init__(f"GraphQL {verb} GetShopProductsMenu: {problem.message}"[:300])
        self.problem = problem

    @property
    def site_changed(self) -> bool:
        return self.problem.kind is ProblemKind.REJECTED


def categories_graphql_body(store_id: str) -> bytes:
    """The site's own ``GetShopProductsMenu`` document (2026) for one store."""
    return orjson.dumps(
        {
            "operationName": "GetShopProductsMenu",
            "variables": {
                "storeId": f"COL:{store_id}",
                "withCampaignLinks": False,
                "campaignCount": 0,
            },
            "query": CATEGORIES_QUERY,
        }
    )


def _rename_children(nodes: Any) -> Any:
    """``items``/``childItems`` (the site's aliases) as the tree's ``catalogGroupView``."""
    if not isinstance(nodes, list):
        return nodes
    renamed = []
    for node in nodes:
        if isinstance(node, dict):
            node = dict(node)
            children = node.pop("childItems", node.get("catalogGroupView"))
            node["catalogGroupView"] = _rename_children(children)
        renamed.append(node)
    return renamed


def parse_graphql_category_tree(body: bytes, status: int = 200) -> tuple[Category, ...]:
    """The departments of a ``GetShopProductsMenu`` answer, as :func:`parse_category_tree`.

    An answer without a menu whose errors (or HTTP status) refuse the document raises
    :class:`CategoryTreeRefused`, naming the server's reason: a client that falls back to
    another source must still be able to tell that this one refused it.
    """
    try:
        document = _json_object(body, "GraphQL category tree")
    except SiteFormatError:
        if status >= 400:
            raise CategoryTreeRefused(classify_errors(None, status)) from None
        raise
    data = document.get("data")
    menu = None
    if isinstance(data, dict):
        menu = data.get("menuItems", data.get("productCategories"))
    if not isinstance(menu, dict):
        errors = document.get("errors")
        if errors or status >= 400:
            raise CategoryTreeRefused(classify_errors(errors, status))
        raise SiteFormatError("GetShopProductsMenu answered no menu")
    nodes = menu.get("items", menu.get("catalogGroupView"))
    tree = _categories(_rename_children(nodes), "")
    if not tree:
        raise SiteFormatError("the GraphQL category tree is empty")
    return tree


def listing_plan(
    tree: tuple[Category, ...], skip: frozenset[str], cap: int
) -> tuple[list[Category], list[Category]]:
    """(categories to list, promotional groupings skipped), from the tree alone.

    A category in ``skip`` (by listing path) only repeats products listed elsewhere. One the
    tree already counts above ``cap`` (48 rows x 104 pages) is replaced by its sub-categories:
    its own listing would stop short. A listing can still say more than the tree did
    (``noOfResults``): the crawl then goes down from there.
    """
    listed: list[Category] = []
    skipped: list[Category] = []

    def visit(category: Category) -> None:
        if category.path in skip:
            skipped.append(category)
        elif category.children and (category.product_count or 0) > cap:
            for child in category.children:
                visit(child)
        else:
            listed.append(category)

    for category in tree:
        visit(category)
    return listed, skipped


def listing_page_count(total: int, page_size: int, max_pages: int) -> int:
    """Pages a listing of ``total`` products has, as far as the site shows them."""
    if total <= 0 or page_size <= 0:
        return 1
    return max(1, min(math.ceil(total / page_size), max_pages))


def parse_listing(body: bytes, path: str = "") -> ListingPage:
    """A listing page: ``_type == "PRODUCT"`` rows are products; the rest (``SINGLE_TILE``,
    ``CONTENT_ASSOCIATION``, ``PRODUCT_ASSOCIATION``) are ads and cross-sell, left out.
    ``path`` is the page's own listing path, to name its sub-categories'."""
    document = _json_object(body, "listing")
    props = document.get("pageProps")
    search = props.get("searchResults") if isinstance(props, dict) else None
    if not isinstance(search, dict):
        raise SiteFormatError("listing without pageProps.searchResults")
    rows = search.get("results")
    total = _count(search.get("noOfResults"))
    if not isinstance(rows, list) or total is None:
        raise SiteFormatError("listing without searchResults.results or noOfResults")
    products = [
        row
        for row in rows
        if isinstance(row, dict) and row.get("_type", PRODUCT_ROW) == PRODUCT_ROW
    ]
    page_size = _count(search.get("pageSize"))
    return ListingPage(
        total=total,
        page_size=page_size if page_size and page_size > 0 else None,
        products=products,
        other_rows=len(rows) - len(products),
        children=_categories(search.get("catalogGroupView"), path.strip("/")),
    )


def _listing_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value.strip()[:_MAX_TEXT].strip() or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _listing_money(value: Any) -> float | None:
    if isinstance(value, str):
        try:
            value = float(value.strip().lstrip("$"))
        except ValueError:
            return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    number = float(value)
    return number if 0.0 <= number <= _MAX_MONEY else None  # NaN fails both


def _listing_sku(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value)
    return value if isinstance(value, int) and value > 0 else None


def listing_line(
    row: dict[str, Any], store_id: str, base_url: str, scraped_at: str
) -> dict[str, Any] | None:
    """A listing's product row as a canonical inbox line (README "Line format"), or
    ``None`` for a row without a usable SKU.

    Values that the loader would refuse (wrong types, negative or absurd prices, texts
    over 1,000 characters) become null or are shortened here, so every line imports.
    Listings carry no barcode, so neither does the line.
    """
    sku = _listing_sku(row.get("id"))
    if sku is None:
        return None
    name, brand, size = (
        _listing_text(row.get("name")),
        _listing_text(row.get("brand")),
        _listing_text(row.get("size")),
    )
    pricing = row.get("pricing")
    pricing = pricing if isinstance(pricing, dict) else {}
    unit = pricing.get("unit")
    unit = unit if isinstance(unit, dict) else {}
    available = row.get("availability")
    slug = " ".join(text for text in (brand, name, size) if text)[:200]
    return {
        "company": "coles",
        "store_id": store_id,
        "sku": sku,
        "name": name,
        "brand": brand,
        "size": size,
        "price": _listing_money(pricing.get("now")),
        "was_price": _listing_money(pricing.get("was")) or None,  # 0 means no was-price
        "unit_price": _listing_money(unit.get("price")),
        "available": available if isinstance(available, bool) else None,
        "url": base_url + product_page_path(str(sku), slug),
        "scraped_at": scraped_at,
    }
