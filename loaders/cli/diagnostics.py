"""The diagnostic commands: a file (analyze-jsonl), a store, a SKU, a product, the data
quality, and queueing the SKUs still without a barcode."""

from __future__ import annotations

from pathlib import Path

import click

from loaders.cli import (
    CONTEXT,
    DEFAULT_ENRICHMENT_INBOX,
    app_of,
    cli,
    company_option,
    inbox_option,
    json_option,
)
from loaders.cli import (
    store_id as canonical_store_id,
)
from loaders.output import echo_json, echo_mapping, echo_table

# Columns of the tables, in the order shown.
FILE_SUMMARY = (
    "file",
    "lines",
    "objects",
    "importable",
    "skipped_rows",
    "bad_lines",
    "store_from_file_name",
    "company_from_file_name",
)
STORE_SUMMARY = ("company", "store_id", "products", "first_seen", "last_seen")
PRICE_COLUMNS = (
    "company",
    "store_id",
    "sku",
    "price",
    "was_price",
    "unit_price",
    "available",
    "last_seen",
)
MERGE_COLUMNS = ("merged_id", "reason", "source", "at")
CONFLICT_COLUMNS = ("company", "sku", "existing_barcode", "offered_barcode", "reason", "source")
COVERAGE_COLUMNS = ("products", "with_sku", "with_barcode", "barcode_pct")
OVERLAP_COLUMNS = ("company", "skus", "with_global_gtin", "also_sold_by_other", "also_sold_pct")


def _no_store(company: str, store: str) -> str:
    return (
        f"no store {store!r} of {company} in the database "
        "(coles-loader data-quality lists the stores; --company for another retailer)"
    )


@cli.command("analyze-jsonl", context_settings=CONTEXT)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@json_option
def analyze_jsonl(file: Path, as_json: bool) -> None:
    """Field presence and types per key in a JSON-lines FILE, and its bad lines.

    Also: the rows the import would take and skip (by reason: Coles' ads, Woolworths'
    sponsored and marketplace rows), the store and company the file name gives lines
    without their own, and the fields the loader does not know (with the field each
    probably meant). Needs no database: use it on a file before dropping it into the inbox.
    """
    from loaders import diagnostics

    result = diagnostics.analyze_jsonl(file)
    if as_json:
        echo_json(result)
        return
    echo_mapping({k: result[k] for k in FILE_SUMMARY}, "File")
    rows = [
        {**f, "types": ", ".join(f"{t}:{n}" for t, n in f["types"].items())}
        for f in result["fields"]
    ]
    echo_table(rows, ["field", "present", "pct", "types"], "Fields")
    if result["skipped_by_reason"]:
        skipped = [{"reason": k, "rows": n} for k, n in result["skipped_by_reason"].items()]
        echo_table(skipped, ["reason", "rows"], "Skipped rows")
    if result["unknown_fields"]:
        echo_table(
            result["unknown_fields"],
            ["field", "did_you_mean"],
            "Fields the loader does not know (ignored)",
        )
    if result["bad_examples"]:
        echo_table(result["bad_examples"], ["line", "reason"], "Bad lines (first examples)")


@cli.command("analyze-store", context_settings=CONTEXT)
@click.argument("store_id")
@company_option()
@json_option
@click.pass_context
def analyze_store(ctx: click.Context, store_id: str, company: str, as_json: bool) -> None:
    """Field presence for the products of STORE_ID in the database."""
    from colesbarcodes.db import diagnostics as queries
    from colesbarcodes.db.engine import session_factory

    store = canonical_store_id(company, store_id)
    with session_factory(app_of(ctx).engine())() as session:
        result = queries.analyze_store(session, company, store)
    if result is None:
        raise click.ClickException(_no_store(company, store))
    if as_json:
        echo_json(result)
        return
    echo_mapping({k: result[k] for k in STORE_SUMMARY}, "Store")
    echo_table(
        [{"field": k, **v} for k, v in result["fields"].items()],
        ["field", "present", "pct"],
        "Fields",
    )


@cli.command("find-sku", context_settings=CONTEXT)
@click.argument("sku")
@company_option()
@json_option
@click.pass_context
def find_sku(ctx: click.Context, sku: str, company: str, as_json: bool) -> None:
    """The product a company SKU belongs to."""
    from colesbarcodes.db import diagnostics as queries
    from colesbarcodes.db.engine import session_factory
    from colesbarcodes.inbox.lines import LineError, normalize_sku

    try:
        canonical = normalize_sku(company, sku)
    except LineError as exc:
        raise click.BadParameter(exc.reason, param_hint="SKU") from None
    with session_factory(app_of(ctx).engine())() as session:
        result = queries.find_sku(session, company, canonical)
    if result is None:
        if as_json:
            echo_json(None)
        raise click.ClickException(f"{company} SKU {canonical} is not in the database")
    if as_json:
        echo_json(result)
    else:
        echo_mapping(result, f"{company} SKU {canonical}")


@cli.command("inspect-product", context_settings=CONTEXT)
@click.argument("product_id", type=click.IntRange(min=1))
@json_option
@click.pass_context
def inspect_product(ctx: click.Context, product_id: int, as_json: bool) -> None:
    """Every field of a product: SKUs, prices per store, merges, conflicts, group."""
    from colesbarcodes.db import diagnostics as queries
    from colesbarcodes.db.engine import session_factory

    with session_factory(app_of(ctx).engine())() as session:
        result = queries.inspect_product(session, product_id)
    if result is None:
        raise click.ClickException(
            f"no product {product_id} in the database (find-sku gives a SKU's product id)"
        )
    if as_json:
        echo_json(result)
        return
    if "merged_into" in result:
        click.echo(
            f"Product {product_id} was merged into product {result['merged_into']} ({result['merge']['reason']})."
        )
        return
    scalars = {k: v for k, v in result.items() if not isinstance(v, list | dict)}
    scalars["company_skus"] = " ".join(
        f"{c}:{s}" for c, skus in result["company_skus"].items() for s in skus
    )
    scalars["group"] = result["group"]["key"] if result["group"] else None
    echo_mapping(scalars, f"Product {product_id}")
    echo_table(result["prices"], PRICE_COLUMNS, "Prices")
    echo_table(result["merges"], MERGE_COLUMNS, "Merged into this product")
    echo_table(result["conflicts"], CONFLICT_COLUMNS, "Barcode conflicts")


@cli.command("compare-store-skus", context_settings=CONTEXT)
@click.argument("store_id")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@company_option()
@json_option
@click.pass_context
def compare_store_skus(
    ctx: click.Context, store_id: str, file: Path, company: str, as_json: bool
) -> None:
    """SKUs of STORE_ID in both FILE and the database, only in the file, only in the database."""
    from colesbarcodes.db import diagnostics as queries
    from colesbarcodes.db.engine import session_factory
    from loaders import diagnostics

    store = canonical_store_id(company, store_id)
    skus, unreadable = diagnostics.file_skus(file, company)
    with session_factory(app_of(ctx).engine())() as session:
        if not queries.store_exists(session, company, store):
            raise click.ClickException(_no_store(company, store))
        result = queries.compare_store_skus(session, company, store, skus)
    result["file"] = str(file)
    result["unreadable_lines"] = unreadable
    if as_json:
        echo_json(result)
        return
    echo_mapping(
        {k: v for k, v in result.items() if not isinstance(v, list)},
        f"{company} store {store} vs {file.name}",
    )
    for key in ("only_in_file_sample", "only_in_database_sample"):
        if result[key]:
            click.echo(f"  {key.replace('_', ' ')}: {', '.join(map(str, result[key]))}")


@cli.command("data-quality", context_settings=CONTEXT)
@json_option
@click.pass_context
def data_quality(ctx: click.Context, as_json: bool) -> None:
    """Products, with SKU and with barcode (and %), per company and per store; and per
    company its SKUs, those with a global GTIN, and of those the ones another retailer
    sells too (the products `coles-loader compare` sets side by side)."""
    from colesbarcodes.db import reports
    from colesbarcodes.db.engine import session_factory

    with session_factory(app_of(ctx).engine())() as session:
        result = reports.data_quality(session)
    if as_json:
        echo_json(result)
        return
    echo_mapping(result["totals"], "All products")
    echo_table(result["companies"], ["company", *COVERAGE_COLUMNS], "Per company")
    echo_table(result["stores"], ["company", "store_id", *COVERAGE_COLUMNS], "Per store")
    echo_table(result["overlap"], OVERLAP_COLUMNS, "Both retailers (SKUs per company)")


@cli.command("queue-missing-barcodes", context_settings=CONTEXT)
@company_option()
@click.option("--store", "store_id", help="Only SKUs sold at this store.")
@inbox_option(DEFAULT_ENRICHMENT_INBOX, "COLES_ENRICHMENT_INBOX", "Barcode-enrichment inbox")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many SKUs.")
@click.pass_context
def queue_missing_barcodes(
    ctx: click.Context, company: str, store_id: str | None, inbox: Path, limit: int | None
) -> None:
    """Write the SKUs whose products have no barcode into the barcode-enrichment inbox,
    as one file for `scrapy crawl coles_barcodes` to take."""
    from colesbarcodes.db import diagnostics as queries
    from colesbarcodes.db.engine import session_factory
    from colesbarcodes.inbox.missing_barcodes import queue_missing_barcodes as queue

    store = canonical_store_id(company, store_id, "'--store'") if store_id is not None else None
    engine = app_of(ctx).engine()
    if store is not None:
        with session_factory(engine)() as session:
            if not queries.store_exists(session, company, store):
                raise click.ClickException(_no_store(company, store))
    try:
        queued = queue(engine, inbox, company, store=store, limit=limit)
    except OSError as exc:
        raise click.ClickException(
            f"cannot write to the inbox {inbox}: {exc.strerror or exc}"
        ) from None
    if queued.path is None:
        click.echo(f"Every {company} SKU has a barcode: nothing to queue.")
        return
    click.echo(f"Queued {queued.count} {company} SKUs without barcode: {queued.path}")
