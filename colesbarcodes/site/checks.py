"""The checks of ``scrapy site-check``: each point of the site contract, judged from what the
site answered.

Pure functions over bytes and status codes (no Scrapy, no network): the ``site_check``
spider makes the requests and hands the answers here, so every verdict can be tested on
real samples. A check's result says what was seen and, when it is not ``ok``, the remedy: the
section of ``docs/site.md`` that names the one place to change.

Statuses: ``ok``; ``changed`` (the site answered, not in the shape the crawls rely on);
``blocked`` (the site's protection refused this exit); ``unreachable`` (no answer, or an
HTTP error); ``skipped`` (not run, because a check it needs failed first: the failing check
is the one to read).
"""

from __future__ import annotations

import enum
import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from colesbarcodes.site.coles import (
    KEY_IN_NEXT_DATA,
    KEY_IN_PAGE,
    KEY_IN_RUNTIME_CONFIG,
    PROTECTION_BLOCK,
    PROTECTION_CHALLENGE,
    Category,
    CategoryTreeRefused,
    GraphQLProblem,
    ProblemKind,
    Reading,
    SiteConfig,
    SiteFormatError,
    parse_build_id,
    parse_category_tree,
    parse_graphql_category_tree,
    parse_graphql_products,
    parse_listing,
    parse_product_page,
    parse_site_config,
    protection_kind,
)
from colesbarcodes.site.unusable import SiteUnusable, Unusable

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

__all__ = [
    "BATCH",
    "BUILD_ID",
    "CATEGORIES",
    "CHECKS",
    "DEFAULT_SKUS",
    "HOME",
    "KEY",
    "LISTING",
    "MIN_DEPARTMENTS",
    "PRODUCT",
    "PRODUCT_PAGE",
    "Answer",
    "CheckResult",
    "Status",
    "check_batch",
    "check_build_id",
    "check_categories",
    "check_home",
    "check_key",
    "check_listing",
    "check_product",
    "check_product_page",
    "failed",
    "mask",
    "render_table",
    "site_unusable",
    "skipped",
]

# Products seen on the site in the shared captures (2025-2026): the GraphQL sample's SKU and
# the product page sample's. Stable, well-known lines; --sku picks others.
DEFAULT_SKUS = ("1018067", "8060378")
# The real tree has about 20 departments (2024-2026 captures); fewer than this is not a tree.
MIN_DEPARTMENTS = 5

DOCS = "docs/site.md"


class Status(enum.StrEnum):
    OK = "ok"
    CHANGED = "changed"
    BLOCKED = "blocked"
    UNREACHABLE = "unreachable"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class Check:
    """One point of the contract: its name, whether the crawls need it, where to fix it."""

    name: str
    required: bool
    section: str
    remedy: str

    def result(self, status: Status, seen: str, remedy: str | None = None) -> CheckResult:
        if status is Status.OK:
            advice = ""
        elif remedy is not None:
            advice = remedy
        else:
            advice = f"{self.remedy}: see {DOCS}, section {self.section}"
        return CheckResult(self.name, status, seen, advice, self.required)


@dataclass(frozen=True, slots=True)
class CheckResult:
    check: str
    status: Status
    seen: str
    remedy: str
    required: bool = True

    @classmethod
    def from_json(cls, row: dict[str, object]) -> CheckResult:
        return cls(
            str(row["check"]),
            Status(str(row["status"])),
            str(row["seen"]),
            str(row["remedy"]),
            bool(row.get("required", True)),
        )

    def as_json(self) -> dict[str, str]:
        """The row ``--json`` prints: ``{"check", "status", "seen", "remedy"}``."""
        row = asdict(self)
        row.pop("required")
        row["status"] = str(self.status)
        return row


HOME = Check(
    "home", True, "Protection", "the home page does not answer with content from this exit"
)
BUILD_ID = Check("build_id", True, "Build id", "the build id is no longer in the page")
KEY = Check("key", True, "Key", "the key is no longer in the page")
PRODUCT = Check(
    "product", True, "GraphQL", "GetProductDetails no longer answers as the crawl expects"
)
BATCH = Check("batch", True, "GraphQL", "documents of several products are not answered")
CATEGORIES = Check("categories", True, "Categories", "the category tree is not where it was")
LISTING = Check("listing", True, "Listings", "the listing pages changed")
PRODUCT_PAGE = Check("product_page", False, "Product page", "the product page changed")
CHECKS = (HOME, BUILD_ID, KEY, PRODUCT, BATCH, CATEGORIES, LISTING, PRODUCT_PAGE)

_BLOCKED_REMEDY = (
    "the site's protection refuses this exit: set COLES_PROXIES to an exit it accepts "
    f"(README, section Running against the real site; {DOCS}, section Protection)"
)
_UNREACHABLE_REMEDY = (
    "check the network, COLES_BASE_URL and COLES_PROXIES; run again later "
    "(an HTTP error of the site may be passing)"
)


@dataclass(frozen=True, slots=True)
class Answer:
    """What one request got: an HTTP answer, or the error that stopped it."""

    status: int = 0
    body: bytes = b""
    error: str = ""  # a download error ("TimeoutError: ..."), empty when an answer came
    content_type: str = ""
    blocked: bool = False  # the exit pool gave up on a block page


def _not_answered(check: Check, answer: Answer, what: str) -> CheckResult | None:
    """The result for an answer that never reached the content, else None."""
    if answer.blocked or protection_kind(answer.body) == PROTECTION_BLOCK:
        return check.result(Status.BLOCKED, f"{what}: Incapsula block page or 403", _BLOCKED_REMEDY)
    if answer.error:
        return check.result(
            Status.UNREACHABLE, f"{what}: {answer.error}"[:300], _UNREACHABLE_REMEDY
        )
    if protection_kind(answer.body) == PROTECTION_CHALLENGE:
        return check.result(
            Status.BLOCKED,
            f"{what}: the JavaScript challenge was not solved (HTTP {answer.status})",
            "the bot check's browser did not get past the challenge: check Chromium "
            f"(COLES_CHROMIUM_PATH) and the exit; see {DOCS}, section Protection",
        )
    if answer.status in (403,):
        return check.result(Status.BLOCKED, f"{what}: HTTP 403", _BLOCKED_REMEDY)
    if answer.status >= 500 or answer.status in (0, 408, 429):
        return check.result(
            Status.UNREACHABLE, f"{what}: HTTP {answer.status}", _UNREACHABLE_REMEDY
        )
    return None


def skipped(check: Check, because: str) -> CheckResult:
    return check.result(Status.SKIPPED, f"not run: {because}", f"fix the {because} first")


def _size(body: bytes) -> str:
    return f"{len(body) / 1024:.0f} kB" if len(body) >= 1024 else f"{len(body)} B"


def check_home(answer: Answer, challenge_solved: bool, exit_label: str) -> CheckResult:
    """The home page answered with content (after the challenge, if one was met)."""
    result = _not_answered(HOME, answer, "home page")
    if result is not None:
        return result
    if answer.status != 200:
        return HOME.result(
            Status.UNREACHABLE, f"home page: HTTP {answer.status}", _UNREACHABLE_REMEDY
        )
    how = "challenge solved in the browser, " if challenge_solved else ""
    return HOME.result(Status.OK, f"HTTP 200, {_size(answer.body)} ({how}exit: {exit_label})")


def check_build_id(home: bytes) -> tuple[CheckResult, str]:
    """``buildId`` in ``__NEXT_DATA__``; returns the result and the id ("" when missing)."""
    try:
        build_id = parse_build_id(home)
    except SiteFormatError as exc:
        return BUILD_ID.result(Status.CHANGED, str(exc)), ""
    return BUILD_ID.result(Status.OK, build_id), build_id


_WHERE = {
    KEY_IN_RUNTIME_CONFIG: "window.__RUNTIME_CONFIG__ (the 2026 layout)",
    KEY_IN_NEXT_DATA: "__NEXT_DATA__.runtimeConfig (the 2024 layout)",
    KEY_IN_PAGE: "the page text only (neither config script)",
}


def check_key(home: bytes, page_url: str) -> tuple[CheckResult, SiteConfig | None]:
    """The subscription key, and where it was found (the site's two layouts)."""
    try:
        config = parse_site_config(home, page_url)
    except SiteFormatError as exc:
        return KEY.result(Status.CHANGED, str(exc)), None
    where = _WHERE.get(config.key_source, config.key_source)
    status = Status.OK if config.key_source != KEY_IN_PAGE else Status.CHANGED
    seen = f"in {where}; GraphQL at {config.graphql_url}"
    return KEY.result(status, seen), config


def _refusal(check: Check, answer: Answer) -> CheckResult | None:
    if answer.status == 401:
        return check.result(
            Status.CHANGED,
            "HTTP 401: the key the home page publishes is refused",
            f"the key moved or its header changed: see {DOCS}, section Key",
        )
    return None


def check_product(answer: Answer, sku: str) -> tuple[CheckResult, str | None]:
    """``GetProductDetails`` for one SKU answers a record with a valid GTIN. Returns the
    result and the product's name (for the product page's URL)."""
    early = _not_answered(PRODUCT, answer, "GraphQL") or _refusal(PRODUCT, answer)
    if early is not None:
        return early, None
    parsed = parse_graphql_products(answer.body, [sku], answer.status, answer.content_type)
    if parsed.problem is not None:
        return PRODUCT.result(Status.CHANGED, _problem_seen(parsed.problem)), None
    reading = parsed.readings.get(sku)
    if reading is None:  # a one-product document cannot lose its answer to another
        return PRODUCT.result(Status.CHANGED, f"no answer for SKU {sku}"), None
    name = reading.record.name if reading.record is not None else None
    label = f"SKU {sku} ({name})" if name else f"SKU {sku}"
    if reading.reading is Reading.NOT_FOUND:
        return PRODUCT.result(
            Status.CHANGED,
            f"SKU {sku} not found: {reading.reason}"[:300],
            "the product may be gone from the site: name a current one with --sku; if every "
            f"SKU is not found, see {DOCS}, section GraphQL",
        ), None
    if reading.reading is Reading.NOT_UNDERSTOOD:
        return PRODUCT.result(Status.CHANGED, f"{label}: {reading.reason}"[:300]), name
    if reading.reading is Reading.INVALID_BARCODE:
        return PRODUCT.result(Status.CHANGED, f"{label}: gtin {reading.reason}"[:300]), name
    if reading.gtin is None:
        return PRODUCT.result(
            Status.CHANGED,
            f"{label}: gtin is empty; if other products' are too, the API stopped carrying "
            "barcodes",
        ), name
    return PRODUCT.result(Status.OK, f"{label}: GTIN {reading.gtin.code}"), name


def _problem_seen(problem: GraphQLProblem) -> str:
    kind = {
        ProblemKind.REJECTED: "GraphQL refused the document",
        ProblemKind.UNREADABLE: "no GraphQL answer",
        ProblemKind.TOO_COMPLEX: "GraphQL refused the document as too complex",
    }.get(problem.kind, "GraphQL failed")
    return f"{kind}: {problem.message}"[:300]


def check_batch(answer: Answer, skus: Sequence[str]) -> CheckResult:
    """One document asking for several SKUs (aliases) answers each of them: a record or
    "not found" both count as an answer."""
    early = _not_answered(BATCH, answer, "GraphQL") or _refusal(BATCH, answer)
    if early is not None:
        return early
    parsed = parse_graphql_products(answer.body, skus, answer.status, answer.content_type)
    if parsed.problem is not None:
        if parsed.problem.kind is ProblemKind.TOO_COMPLEX:
            return BATCH.result(
                Status.CHANGED,
                f"refused as too complex: {parsed.problem.message}"[:300],
                "the site takes one product per document: set COLES_GRAPHQL_BATCH=1; see "
                f"{DOCS}, section GraphQL",
            )
        return BATCH.result(Status.CHANGED, _problem_seen(parsed.problem))
    readings = [parsed.readings.get(sku) for sku in skus]
    unanswered = [
        f"{sku}: {reading.reason if reading else 'lost to another SKU'}"
        for sku, reading in zip(skus, readings, strict=True)
        if reading is None or reading.reading is Reading.NOT_UNDERSTOOD
    ]
    if unanswered:
        return BATCH.result(
            Status.CHANGED, f"no answer in one document for {'; '.join(unanswered)}"[:300]
        )
    found = sum(1 for r in readings if r is not None and r.reading is not Reading.NOT_FOUND)
    return BATCH.result(
        Status.OK, f"{len(skus)} of {len(skus)} answered in one document ({found} found)"
    )


def _tree(
    parse: Callable[[bytes, int], tuple[Category, ...]], answer: Answer | None, what: str
) -> tuple[tuple[Category, ...], str]:
    """(the tree, what was seen) for one source of it; an empty tree when unusable. A
    GraphQL document refused whole is seen in the server's words."""
    if answer is None:
        return (), f"{what}: not asked"
    if answer.blocked or answer.error or protection_kind(answer.body) is not None:
        return (), f"{what}: {answer.error or 'blocked'}"[:120]
    try:
        tree = parse(answer.body, answer.status)
    except CategoryTreeRefused as exc:
        return (), str(exc)[:240]
    except SiteFormatError as exc:
        return (), f"{what}: {exc}"[:160]
    return tree, f"{what}: {len(tree)} departments"


def _route_tree(body: bytes, status: int) -> tuple[Category, ...]:
    """The tree of a ``browse.json`` answer (only a 200 carries one)."""
    if status != 200:
        raise SiteFormatError(f"HTTP {status}")
    return parse_category_tree(body)


def check_categories(
    graphql: Answer | None, route: Answer | None
) -> tuple[CheckResult, tuple[Category, ...]]:
    """The category tree from GraphQL ``GetShopProductsMenu`` (2026) or the older
    ``browse.json`` route (2024): ok when either gives a plausible tree (the listing crawl
    falls back from one to the other); ``seen`` tells both, GraphQL first (a refused
    document, then the route's 404, is the site changing under the crawl's document).
    Returns the tree used."""
    if graphql is None and route is None:
        return skipped(CATEGORIES, "key and build id"), ()
    from_graphql, seen_g = _tree(parse_graphql_category_tree, graphql, "GraphQL")
    from_route, seen_r = _tree(_route_tree, route, "browse.json")
    seen = f"{seen_g}; {seen_r}"
    tree = from_graphql if len(from_graphql) >= MIN_DEPARTMENTS else from_route
    if len(tree) >= MIN_DEPARTMENTS:
        return CATEGORIES.result(Status.OK, seen), tree
    answers = [a for a in (graphql, route) if a is not None]
    if all(a.blocked or protection_kind(a.body) == PROTECTION_BLOCK for a in answers):
        return CATEGORIES.result(Status.BLOCKED, seen, _BLOCKED_REMEDY), ()
    if all(a.error or a.status >= 500 for a in answers):
        return CATEGORIES.result(Status.UNREACHABLE, seen, _UNREACHABLE_REMEDY), ()
    if from_graphql or from_route:
        seen += f" (fewer than {MIN_DEPARTMENTS}: not a plausible tree)"
    return CATEGORIES.result(Status.CHANGED, seen), ()


def check_listing(answer: Answer, path: str) -> CheckResult:
    """One listing page of one category answers with product rows."""
    early = _not_answered(LISTING, answer, f"listing {path}")
    if early is not None:
        return early
    if answer.status != 200:
        return LISTING.result(Status.CHANGED, f"listing {path}: HTTP {answer.status}")
    try:
        page = parse_listing(answer.body, path)
    except SiteFormatError as exc:
        return LISTING.result(Status.CHANGED, f"listing {path}: {exc}"[:300])
    if not page.products:
        return LISTING.result(
            Status.CHANGED, f"listing {path}: no product rows ({page.other_rows} other rows)"
        )
    return LISTING.result(
        Status.OK, f"{path}: {len(page.products)} product rows of {page.total} on page 1"
    )


def check_product_page(answer: Answer, sku: str) -> CheckResult:
    """The product page of the SKU parses; whether it carries a GTIN is information only
    (the crawl reads it only with ``COLES_PRODUCT_PAGE_FALLBACK``)."""
    early = _not_answered(PRODUCT_PAGE, answer, "product page")
    if early is not None:
        return early
    if answer.status != 200:
        return PRODUCT_PAGE.result(Status.OK, f"HTTP {answer.status}")
    json_ld = b"application/ld+json" in answer.body
    try:
        record = parse_product_page(answer.body, sku)
    except SiteFormatError as exc:
        return PRODUCT_PAGE.result(
            Status.OK, f"JSON-LD {'present' if json_ld else 'absent'}; not readable: {exc}"[:300]
        )
    gtin = f"GTIN {record.gtin}" if record.gtin else "no GTIN"
    return PRODUCT_PAGE.result(Status.OK, f"JSON-LD {'present' if json_ld else 'absent'}; {gtin}")


def failed(results: Iterable[CheckResult]) -> list[CheckResult]:
    """The required checks that are not ok (skipped ones only follow from these)."""
    return [r for r in results if r.required and r.status is not Status.OK]


# Why a crawl could not use the site, for a required check failing with this status.
_UNUSABLE = {
    Status.CHANGED: Unusable.CHANGED,
    Status.UNREACHABLE: Unusable.UNREACHABLE,
    Status.BLOCKED: Unusable.BLOCKED,
}


def site_unusable(results: Iterable[CheckResult]) -> SiteUnusable | None:
    """Why the crawls cannot use the site, from the first required check that says so
    (``scrapy crawl site_check`` ends with it, and exits as the crawls would); None when
    they can."""
    first = next((r for r in failed(results) if r.status in _UNUSABLE), None)
    if first is None:
        return None
    return SiteUnusable(_UNUSABLE[first.status], f"{first.check}: {first.seen}")


def mask(body: bytes, secrets: Iterable[str]) -> bytes:
    """``body`` with every secret (the subscription key, proxy credentials) replaced."""
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        body = re.sub(re.escape(secret.encode()), b"***", body)
    return body


def render_table(results: Sequence[CheckResult]) -> str:
    """The rows as a plain-text table, remedies on their own lines under failing rows."""
    width = max(len(r.check) for r in results)
    lines = []
    for result in results:
        optional = "" if result.required else " (information)"
        lines.append(f"{result.check:<{width}}  {result.status:<11}  {result.seen}{optional}")
        if result.remedy and result.status is not Status.SKIPPED:
            lines.append(f"{'':<{width}}  {'':<11}  -> {result.remedy}")
    return "\n".join(lines)
