"""The replica's GraphQL API: a real schema executed by graphql-core, shaped like the site's.

A client that works here must also work against a real GraphQL server, so nothing is faked:
documents are parsed, validated against the schema (unknown fields, variable types, unused
variables...), variables coerced (``BrandedId`` refuses ``0584``) and executed with aliases and
fragments. Errors come back the way Apollo-style servers send them: a resolver error nulls its
own alias only (HTTP 200), a document that cannot run is refused whole (HTTP 400, no ``data``).

The schema follows the real ``GetProductDetails`` answer (``samples/coles_graphql_GetProductDetails
.json``) and declares what the site's own queries declare (``product(productId: String!, storeId:
BrandedId!, shoppingMethod: ShoppingMethod, useV2NipAndAllergens: Boolean)``; 2026:
``productCategories(storeId: BrandedId!, withCampaignLinks: Boolean!, campaignCount: Int)`` with
the types ``ProductCategories`` and ``ProductCategory``), so a document the site would refuse is
refused here too; the 2024 layout has no ``productCategories``.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import graphql
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    StringValueNode,
    VariableNode,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from graphql import GraphQLResolveInfo, SelectionSetNode, ValueNode

__all__ = [
    "LAYOUTS",
    "GraphQLRequest",
    "ProductField",
    "Resolvers",
    "error_body",
    "execute",
    "prepare",
    "schema_for",
]

LAYOUTS = ("2026", "2024")

_BRANDED_ID = re.compile(r"^COL:\d+$")
_STORE = re.compile(r"^COL:(\d{4})$")

_PRODUCT_SDL = """
"A store or catalogue id with its brand, e.g. COL:0584."
scalar BrandedId
"Integers beyond 32 bits (brand ids)."
scalar Long

enum ShoppingMethod { HOME_DELIVERY CLICK_AND_COLLECT IN_STORE }

type ImageUri { altText: String type: String uri: String }
type ImagePath { path: String description: String }
type ProductImages { thumb: ImagePath zoom: ImagePath full: ImagePath }
type Restrictions {
  retailLimit: Int promotionalLimit: Int liquorAgeRestrictionFlag: Boolean
  tobaccoAgeRestrictionFlag: Boolean delivery: [String] restrictedByOrganisation: Boolean
}
type MerchandiseHeir {
  tradeProfitCentre: String categoryGroup: String category: String subCategory: String
  className: String
}
type OnlineHeir {
  aisle: String category: String subCategory: String categoryId: String aisleId: String
  subCategoryId: String
}
type CountryOfOrigin {
  logoRequired: Boolean barcodeRequired: Boolean descriptionRequired: Boolean country: String
  barcodePercentage: Int statement: String description: String
}
type Location {
  aisleSide: String description: String facing: Int aisle: String order: Int shelf: String
}
type AdditionalInfo { title: String description: String }
type BrandDetails { id: Long name: String seoToken: String }
type Nutrient {
  nutrient: String value: String dailyIntakeInfo: String nutrientDisplayOrder: String
}
type NutritionBreakdown {
  title: String subtitle: String disclaimer: String nutrients: [Nutrient]
}
type Nutrition {
  title: String servingsPerPackage: String servingSize: String dailyIntakeDisclaimer: String
  breakdown: [NutritionBreakdown]
}
type UnitPrice {
  quantity: Int ofMeasureQuantity: Int ofMeasureUnits: String price: Float
  ofMeasureType: String isWeighted: Boolean isIncremental: Boolean
}
type MultiBuyPromotion { quantity: Int reward: Float type: String }
type Pricing {
  now: Float was: Float saveAmount: Float saveStatement: String unit: UnitPrice
  comparable: String promotionType: String onlineSpecial: Boolean
  multiBuyPromotion: MultiBuyPromotion priceDescription: String savePercent: Int
  specialType: String offerDescription: String
}
type ProductVariation {
  id: Int name: String brand: String description: String size: String imageUris: [ImageUri]
  availability: Boolean availabilityType: String availabilityStatus: String pricing: Pricing
}
type Variations { total: Int byVarieties: [ProductVariation] bySizes: [ProductVariation] }

type Product {
  id: Int
  name: String
  brand: String
  description: String
  size: String
  imageUris: [ImageUri]
  images: [ProductImages]
  restrictions: Restrictions
  availability: Boolean
  availabilityType: String
  availabilityStatus: String
  minGuarantee: String
  merchandiseHeir: MerchandiseHeir
  onlineHeirs: [OnlineHeir]
  associatedProductId: ID
  continuity: String
  lifestyle: [String]
  countryOfOrigin: CountryOfOrigin
  lastUpdated: String
  locations: [Location]
  additionalInfo: [AdditionalInfo]
  excludeFromSubstitution: Boolean
  brandDetails: BrandDetails
  collectableCampaign: String
  disclaimers: [String]
  internalDescription: String
  longDescription: String
  nutrition: Nutrition
  nutritionalClaims: [String]
  pricing: Pricing
  "The barcode, as the catalogue holds it (absent: null)."
  gtin: String
  variations: Variations
}
"""

# The category tree as the site's own ``GetShopProductsMenu`` declares it (2026; the same in
# every public client seen): ``withCampaignLinks: Boolean!``, fragments on
# ``ProductCategories`` and ``ProductCategory``. ``{node}`` and ``{links}`` differ only under
# the ``categories-retyped`` break (:data:`RETYPED`).
_CATEGORIES_SDL = """
"One node of the category tree: a department, a category or an aisle."
type {node} {{
  id: String level: Int name: String originalName: String productCount: Int seoToken: String
  type: String subType: String catalogGroupView: [{node}!]
}}
type ProductCategories {{
  catalogGroupView: [{node}!]!
  excludedCategoryIds: [String!]!
}}
"""

_QUERY_2026 = """
type Query {{
  product(productId: String!, storeId: BrandedId!, shoppingMethod: ShoppingMethod,
          useV2NipAndAllergens: Boolean): Product
  productCategories(storeId: BrandedId!, withCampaignLinks: {links},
                    campaignCount: Int): ProductCategories
}}
"""

_QUERY_2024 = """
type Query {
  product(productId: String!, storeId: BrandedId!, shoppingMethod: ShoppingMethod,
          useV2NipAndAllergens: Boolean): Product
}
"""

SITE_TYPES = {"node": "ProductCategory", "links": "Boolean!"}
"""The category node's type and ``withCampaignLinks``' type, as the site declares them."""
RETYPED = {"node": "CatalogGroupView", "links": "Boolean"}
"""The same under the ``categories-retyped`` break: as the project's first document had them,
so that a document written for the site's own schema is refused whole."""


class Resolvers(Protocol):
    """What the schema asks of the site (the context value of every execution)."""

    def product(self, product_id: str, store: str) -> dict[str, Any]:
        """The record for ``product_id``; raises :class:`GraphQLError` if there is none."""
        ...

    def product_categories(self, store: str) -> dict[str, Any]:
        """``{"catalogGroupView": [...], "excludedCategoryIds": [...]}``."""
        ...


def _branded_id(value: Any) -> str:
    if not isinstance(value, str):
        raise GraphQLError(f"BrandedId cannot represent a non-string value: {value!r}.")
    if not _BRANDED_ID.match(value):
        raise GraphQLError(f'BrandedId cannot represent value: "{value}" (expected COL:<digits>).')
    return value


def _branded_id_literal(node: ValueNode, _variables: Any = None) -> str:
    if not isinstance(node, StringValueNode):
        raise GraphQLError(
            f"BrandedId cannot represent a non-string value: {graphql.print_ast(node)}"
        )
    return _branded_id(node.value)


def _long_out(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise GraphQLError(f"Long cannot represent value: {value!r}")
    return int(value)


def _long_in(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise GraphQLError(f"Long cannot represent a non-integer value: {value!r}")
    return value


def _long_literal(node: ValueNode, _variables: Any = None) -> int:
    if not isinstance(node, graphql.IntValueNode):
        raise GraphQLError(f"Long cannot represent a non-integer value: {graphql.print_ast(node)}")
    return int(node.value)


def _set_scalar(schema: GraphQLSchema, name: str, out: Any, value_in: Any, literal: Any) -> None:
    """Attach coercion to a scalar built from SDL (graphql-core 3.3 names, or 3.2's)."""
    scalar: Any = schema.type_map[name]
    if hasattr(scalar, "coerce_input_value"):  # graphql-core >= 3.3
        scalar.coerce_output_value = out
        scalar.coerce_input_value = value_in
        scalar.coerce_input_literal = literal
    else:  # pragma: no cover - graphql-core 3.2
        scalar.serialize = out
        scalar.parse_value = value_in
        scalar.parse_literal = literal


def _store(store_id: str) -> str:
    """The 4-digit store of a well-formed ``BrandedId``, or the site's "Invalid StoreId"."""
    match = _STORE.match(store_id)
    if match is None:
        raise GraphQLError(
            f"Invalid StoreId: {store_id} is not a store.", extensions={"code": "BAD_USER_INPUT"}
        )
    return match.group(1)


def _resolve_product(
    _root: Any,
    info: GraphQLResolveInfo,
    productId: str,
    storeId: str,
    **_: Any,
) -> dict[str, Any]:
    resolvers: Resolvers = info.context
    return resolvers.product(productId, _store(storeId))


def _resolve_categories(
    _root: Any,
    info: GraphQLResolveInfo,
    storeId: str,
    **_: Any,
) -> dict[str, Any]:
    resolvers: Resolvers = info.context
    return resolvers.product_categories(_store(storeId))


# Root fields a broken replica serves under another name (``--break``): the old name is then
# unknown to the schema, as on a site whose API was renamed.
RENAMED_FIELDS = {"product": "productDetails", "productCategories": "shopMenu"}


@functools.cache
def schema_for(
    layout: str,
    renamed: frozenset[str] = frozenset(),
    retyped: bool = False,
    *,
    product_non_null: bool = False,
) -> GraphQLSchema:
    """The executable schema of ``layout`` ("2026" or "2024"), built once; the root fields
    in ``renamed`` go by their :data:`RENAMED_FIELDS` name; ``retyped``: the category types
    of :data:`RETYPED` instead of the site's. ``product_non_null`` declares the root field
    ``product`` as ``Product!``: an unknown SKU's error then nulls the whole document
    (GraphQL propagates a non-null field's null to its parent)."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}")
    types = RETYPED if retyped else SITE_TYPES
    query_sdl = (
        _CATEGORIES_SDL.format(**types) + _QUERY_2026.format(**types)
        if layout == "2026"
        else _QUERY_2024
    )
    if product_non_null:
        query_sdl = re.sub(r"(\bproduct\([^)]*\)): Product\b", r"\1: Product!", query_sdl)
    for name in sorted(renamed):
        query_sdl = query_sdl.replace(f"  {name}(", f"  {RENAMED_FIELDS[name]}(")
    schema = graphql.build_schema(_PRODUCT_SDL + query_sdl)
    _set_scalar(schema, "BrandedId", _branded_id, _branded_id, _branded_id_literal)
    _set_scalar(schema, "Long", _long_out, _long_in, _long_literal)
    query = schema.query_type
    if query is None:  # pragma: no cover - the SDL above has one
        raise TypeError("schema without a query type")
    names = {n: RENAMED_FIELDS[n] if n in renamed else n for n in RENAMED_FIELDS}
    query.fields[names["product"]].resolve = _resolve_product
    if names["productCategories"] in query.fields:
        query.fields[names["productCategories"]].resolve = _resolve_categories
    return schema


@dataclass
class ProductField:
    """One ``product`` root field of a document, with its ``productId`` as far as known."""

    alias: str
    product_id: str | None  # literal or variable value; None when neither gives a string
    store_id: str | None


@dataclass
class GraphQLRequest:
    """A request body read once: the document, what it asks for, or why it cannot run.

    ``error`` is the whole answer for a body that never gets to execution (status, JSON).
    """

    operation_name: str  # as sent, else the document's, else "(anonymous)"
    variables: dict[str, Any] = field(default_factory=dict)
    document: DocumentNode | None = None
    operation: OperationDefinitionNode | None = None
    products: list[ProductField] = field(default_factory=list)
    stores: list[str] = field(default_factory=list)
    error: tuple[int, dict[str, Any]] | None = None

    @property
    def skus(self) -> list[int]:
        """The numeric product ids asked for (one per ``product`` field)."""
        return [int(p.product_id) for p in self.products if p.product_id and p.product_id.isdigit()]


def error_body(message: str, code: str, **extra: Any) -> dict[str, Any]:
    """``{"errors": [{"message", "extensions": {"code"}}]}``, the shape of a refused document."""
    return {"errors": [{"message": message, **extra, "extensions": {"code": code}}]}


def _formatted(error: GraphQLError, code: str) -> dict[str, Any]:
    entry: dict[str, Any] = dict(error.formatted)
    extensions = entry.get("extensions")
    entry["extensions"] = {**(extensions if isinstance(extensions, dict) else {}), "code": code}
    return entry


def prepare(body: Any, renamed: frozenset[str] = frozenset()) -> GraphQLRequest:
    """Read a decoded JSON body: parse its document and find the product fields it asks for
    (under their :data:`RENAMED_FIELDS` names for the root fields in ``renamed``, so that a
    client of a renamed API is still counted)."""
    product_field = RENAMED_FIELDS["product"] if "product" in renamed else "product"
    categories_field = (
        RENAMED_FIELDS["productCategories"]
        if "productCategories" in renamed
        else "productCategories"
    )
    if not isinstance(body, dict):
        request = GraphQLRequest("(anonymous)")
        request.error = (400, error_body("Body must be a JSON object.", "BAD_REQUEST"))
        return request
    sent_name = body.get("operationName")
    request = GraphQLRequest(sent_name if isinstance(sent_name, str) else "(anonymous)")
    variables = body.get("variables")
    if variables is not None and not isinstance(variables, dict):
        request.error = (400, error_body("Variables must be a JSON object.", "BAD_REQUEST"))
        return request
    request.variables = variables or {}
    query = body.get("query")
    if not isinstance(query, str) or not query.strip():
        request.error = (
            400,
            error_body("GraphQL operations must contain a non-empty `query`.", "BAD_REQUEST"),
        )
        return request
    try:
        document = graphql.parse(query)
    except GraphQLError as exc:
        request.error = (400, {"errors": [_formatted(exc, "GRAPHQL_PARSE_FAILED")]})
        return request
    request.document = document
    if sent_name is not None and not isinstance(sent_name, str):
        request.error = (400, error_body("operationName must be a string.", "BAD_REQUEST"))
        return request
    operation = graphql.get_operation_ast(document, sent_name)
    if operation is None:
        message = (
            f'Unknown operation named "{sent_name}".'
            if sent_name
            else "Must provide operation name if query contains multiple operations."
        )
        request.error = (400, error_body(message, "GRAPHQL_VALIDATION_FAILED"))
        return request
    request.operation = operation
    if sent_name is None and operation.name is not None:
        request.operation_name = operation.name.value
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    stores: set[str] = set()
    if operation.operation == OperationType.QUERY:
        for node in _root_fields(operation.selection_set, fragments, set()):
            name = node.name.value
            if name not in (product_field, categories_field):
                continue
            args = {arg.name.value: arg.value for arg in node.arguments or ()}
            store_id = _argument(args.get("storeId"), request.variables)
            if store_id is not None:
                stores.add(store_id.removeprefix("COL:"))
            if name == product_field:
                alias = node.alias.value if node.alias else name
                product_id = _argument(args.get("productId"), request.variables)
                request.products.append(ProductField(alias, product_id, store_id))
    request.stores = sorted(stores)
    return request


def _root_fields(
    selections: SelectionSetNode, fragments: Mapping[str, FragmentDefinitionNode], seen: set[str]
) -> Iterator[FieldNode]:
    """The root fields of an operation, through fragment spreads and inline fragments."""
    for selection in selections.selections:
        if isinstance(selection, FieldNode):
            yield selection
        elif isinstance(selection, InlineFragmentNode):
            yield from _root_fields(selection.selection_set, fragments, seen)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name in fragments and name not in seen:
                seen.add(name)
                yield from _root_fields(fragments[name].selection_set, fragments, seen)


def _argument(node: ValueNode | None, variables: Mapping[str, Any]) -> str | None:
    """An argument's value as a string, from a literal or a variable (None if neither)."""
    if isinstance(node, VariableNode):
        value = variables.get(node.name.value)
    elif isinstance(node, (StringValueNode, graphql.IntValueNode)):
        value = node.value
    else:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    return str(value)


def execute(
    schema: GraphQLSchema, request: GraphQLRequest, resolvers: Resolvers
) -> tuple[int, dict[str, Any]]:
    """Validate, coerce variables and execute a prepared request: (HTTP status, JSON body)."""
    if request.error is not None:
        return request.error
    if request.document is None or request.operation is None:  # pragma: no cover
        return 400, error_body("No operation to execute.", "BAD_REQUEST")
    errors = graphql.validate(schema, request.document)
    if errors:
        return 400, {"errors": [_formatted(e, "GRAPHQL_VALIDATION_FAILED") for e in errors]}
    coerced = graphql.execution.values.get_variable_values(
        schema, request.operation.variable_definitions or [], request.variables
    )
    if isinstance(coerced, list):
        return 400, {"errors": [_formatted(e, "BAD_USER_INPUT") for e in coerced]}
    result = graphql.execute(
        schema,
        request.document,
        context_value=resolvers,
        variable_values=request.variables,
        operation_name=request.operation.name.value if request.operation.name else None,
    )
    if graphql.pyutils.is_awaitable(result):  # pragma: no cover - resolvers are synchronous
        raise TypeError("the replica's resolvers must be synchronous")
    if not isinstance(result, graphql.ExecutionResult):  # pragma: no cover - one result
        raise TypeError("expected one ExecutionResult")
    body: dict[str, Any] = {}
    if result.errors:
        body["errors"] = [
            _formatted(e, (e.extensions or {}).get("code", "INTERNAL_SERVER_ERROR"))
            for e in result.errors
        ]
    body["data"] = result.data
    return 200, body
