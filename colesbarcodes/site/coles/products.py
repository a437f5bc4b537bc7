"""A SKU's product record: the GraphQL ``GetProductDetails`` documents the crawl sends and
the total reading of their answers, and the product page. Pure functions, no Scrapy.

* ``POST {graphql}`` ``GetProductDetails`` (``$productId: String!``, ``$storeId: BrandedId!``
  as ``COL:<store>``), several SKUs per document as aliases ``p0``, ``p1``...;
  ``data.product.gtin`` is a string. An unknown SKU: an ``errors[]`` entry saying "not
  found" and a null product. Validation and bad-input errors mean the site changed.
* ``GET /product/{slug}-{sku}``: ``__NEXT_DATA__`` ``props.pageProps.product`` and a
  schema.org JSON-LD ``Product`` (``gtin`` seen there in 2025; never trust another SKU's).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from colesbarcodes.gtin import Gtin, InvalidGtin, parse_gtin, shown
from colesbarcodes.site.coles.pages import (
    SiteFormatError,
    json_ld_objects,
    parse_next_data,
    text_value,
)
from colesbarcodes.site.coles.protection import protection_kind

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "GRAPHQL_QUERY",
    "GraphQLAnswer",
    "GraphQLProblem",
    "ProblemKind",
    "ProductRecord",
    "Reading",
    "SkuReading",
    "classify_errors",
    "describe_answer",
    "graphql_body",
    "graphql_headers",
    "parse_graphql_products",
    "parse_product_page",
    "product_alias",
    "product_page_path",
    "read_product_page",
]


_SLUG_RE = re.compile(r"[^a-z0-9]+")


# A sparse selection: the crawl reads these fields only, which keeps many products per
# document below the server's complexity limit.
_FRAGMENT = "ProductBarcode"


_FRAGMENT_TEXT = f"fragment {_FRAGMENT} on Product {{ id name brand size gtin }}"


GRAPHQL_QUERY = (
    "query GetProductDetails($productId: String!, $storeId: BrandedId!) { "
    f"product(productId: $productId, storeId: $storeId) {{ ...{_FRAGMENT} }} }} {_FRAGMENT_TEXT}"
)


@dataclass(frozen=True, slots=True)
class ProductRecord:
    """What the site says about one SKU; ``gtin`` is the raw value, not validated yet."""

    sku: str
    name: str | None = None
    brand: str | None = None
    size: str | None = None
    gtin: object = None
    has_gtin_field: bool = False


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


def _record(sku: str, product: dict[str, Any]) -> ProductRecord:
    return ProductRecord(
        sku=sku,
        name=text_value(product.get("name")),
        brand=text_value(product.get("brand")),
        size=text_value(product.get("size")),
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
    for ld in json_ld_objects(html):
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


def product_page_path(sku: str, name: str | None = None) -> str:
    """``/product/{slug}-{sku}``; the site redirects any slug to the right one."""
    slug = _SLUG_RE.sub("-", (name or "product").lower()).strip("-") or "product"
    return f"/product/{slug}-{sku}"
