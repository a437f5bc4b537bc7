"""``coles-loader compare``: both retailers side by side (the work is
:func:`colesbarcodes.db.comparison.compare_prices`)."""

from __future__ import annotations

import csv
import io
import math
from typing import TYPE_CHECKING, Any

import click

from loaders.cli import CONTEXT, app_of, cli
from loaders.output import echo_json, echo_table

if TYPE_CHECKING:
    from colesbarcodes.db.report_data import BothRetailers, PricePair

NAME_WIDTH = 40  # the table cuts longer names (--json and --csv keep them whole)
DEFAULT_LIMIT = 50


def _retailers(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, str]:
    """``coles,woolworths``: two different company names, lower-cased."""
    names = [part.strip().lower() for part in value.split(",")]
    if len(names) != 2 or not all(names):
        raise click.BadParameter(
            f"{value!r} is not two companies: give them separated by a comma, "
            "e.g. coles,woolworths",
            ctx=ctx,
            param=param,
        )
    if names[0] == names[1]:
        raise click.BadParameter(
            f"{value!r} names {names[0]} twice: give two different companies", ctx=ctx, param=param
        )
    for name in names:
        if len(name) > 32 or not name.isprintable():
            raise click.BadParameter(f"{name!r} is not a company name", ctx=ctx, param=param)
    return names[0], names[1]


def _dollars(ctx: click.Context, param: click.Parameter, value: float | None) -> float:
    """A difference in dollars: a finite number of 0 or more."""
    if value is None:
        return 0.0
    if not math.isfinite(value) or value < 0:
        raise click.BadParameter(
            f"{value} is not an amount: give dollars, 0 or more (e.g. 0.50)", ctx=ctx, param=param
        )
    return value


def _store_candidates(
    retailers: tuple[str, str], values: tuple[str, ...]
) -> dict[str, dict[str, str]]:
    """Per given ``--store`` value, its canonical form for each retailer whose store ids it
    can be (Coles' ``584`` is ``0584``); a value none can be is a usage error."""
    from colesbarcodes.inbox.lines import LineError, normalize_store_id

    candidates: dict[str, dict[str, str]] = {}
    for value in values:
        forms: dict[str, str] = {}
        reason = "empty store id"
        for company in retailers:
            try:
                store = normalize_store_id(company, value)
            except LineError as exc:
                reason = exc.reason
                continue
            if store is not None:
                forms[company] = store
        if not forms:
            raise click.BadParameter(reason, param_hint="'--store'")
        candidates[value] = forms
    return candidates


def _side_columns(company: str) -> list[str]:
    return [f"{company}_sku", f"{company}_store", f"{company}_price"]


def _flat(pair: PricePair, *, last_seen: bool, name_width: int | None) -> dict[str, Any]:
    """One pairing as a table or CSV row: each retailer's columns named after it."""
    name = pair["name"]
    if name_width is not None and name is not None and len(name) > name_width:
        name = name[: name_width - 1] + "…"
    row: dict[str, Any] = {"product_id": pair["product_id"], "name": name, "gtin": pair["gtin"]}
    for side in pair["prices"]:
        company = side["company"]
        row[f"{company}_sku"] = side["sku"]
        row[f"{company}_store"] = side["store_id"]
        row[f"{company}_price"] = side["price"]
        if last_seen:
            row[f"{company}_last_seen"] = side["last_seen"]
    row["difference"] = pair["difference"]
    if "pairings" in pair:
        row["pairings"] = pair["pairings"]
    return row


def _echo_csv(result: BothRetailers, per_product: bool) -> None:
    columns = ["product_id", "name", "gtin"]
    for company in result["retailers"]:
        columns += [*_side_columns(company), f"{company}_last_seen"]
    columns += ["difference", *(["pairings"] if per_product else [])]
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, lineterminator="\n")
    writer.writeheader()
    for pair in result["rows"]:
        writer.writerow(_flat(pair, last_seen=True, name_width=None))
    click.echo(out.getvalue(), nl=False)


def _summary(result: BothRetailers) -> str:
    first, second = result["retailers"]
    shown, total = len(result["rows"]), result["pairings"]
    return (
        f"{shown} of {total} pairings shown; {result['products']} products with a global "
        f"GTIN sold by both {first} and {second}. difference = {first} price - {second} price."
    )


@cli.command("compare", context_settings=CONTEXT)
@click.option(
    "--retailers",
    default=",".join(("coles", "woolworths")),
    show_default=True,
    callback=_retailers,
    metavar="FIRST,SECOND",
    help="The two companies compared; the difference is FIRST's price minus SECOND's.",
)
@click.option(
    "--store",
    "stores",
    multiple=True,
    metavar="ID",
    help="Only pairings at this store of either retailer (repeatable; Woolworths: online). "
    "A retailer none of whose stores is named keeps all of its stores.",
)
@click.option(
    "--min-difference",
    type=float,
    callback=_dollars,
    metavar="DOLLARS",
    help="Only pairings whose prices differ by at least this much (either way).",
)
@click.option(
    "--per-product",
    is_flag=True,
    help="One row per product: its largest difference, and how many pairings it has.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=DEFAULT_LIMIT,
    show_default=True,
    help="At most this many rows, the largest differences (0: all).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV, one row per pairing.")
@click.pass_context
def compare(
    ctx: click.Context,
    retailers: tuple[str, str],
    stores: tuple[str, ...],
    min_difference: float,
    per_product: bool,
    limit: int,
    as_json: bool,
    as_csv: bool,
) -> None:
    """Both retailers side by side: the products with a global GTIN that both sell, with
    each retailer's SKU and current price, largest difference first.

    \b
    One row per product and store pairing: every store of the first retailer where
    the product has a price, against every store of the second where it has one.
    Woolworths' prices are online prices (store "online"), so each Coles store's
    price is set against Woolworths' online price. Only global GTINs pair: in-store
    codes (02..., 20-29, loose produce) and company-internal ones never make two
    retailers' products one.

    \b
    Examples:
      coles-loader compare                              the 50 largest differences
      coles-loader compare --store 0584 --min-difference 0.50
      coles-loader compare --per-product --limit 0 --csv > both.csv

    When nothing is listed (the database holds one retailer only, no product both sell,
    or the filters leave nothing), a line says why (on stderr with --json and --csv,
    whose output stays parseable) and the status is 0.
    """
    from colesbarcodes.db.comparison import compare_prices, known_stores, retailers_present
    from colesbarcodes.db.engine import session_factory

    if as_json and as_csv:
        raise click.UsageError("--json and --csv cannot be given together: choose one")
    candidates = _store_candidates(retailers, stores)
    with session_factory(app_of(ctx).engine())() as session:
        present = retailers_present(session, retailers)
        chosen: dict[str, set[str]] = {}
        if stores:
            wanted: dict[str, set[str]] = {company: set() for company in retailers}
            for forms in candidates.values():
                for company, store in forms.items():
                    wanted[company].add(store)
            chosen = known_stores(session, wanted)
            unknown = [
                value
                for value, forms in candidates.items()
                if not any(store in chosen[company] for company, store in forms.items())
            ]
            if unknown:
                raise click.ClickException(
                    f"no store {', '.join(map(repr, unknown))} of {' or '.join(retailers)} "
                    "in the database (coles-loader data-quality lists the stores)"
                )
        result = compare_prices(
            session,
            retailers,
            stores=chosen,
            min_difference=min_difference,
            limit=limit or None,
            per_product=per_product,
        )
    message = _nothing_to_compare(result, present) if not result["rows"] else None
    if as_json:
        echo_json(result)
    elif as_csv:
        _echo_csv(result, per_product)
    elif message is None:
        first, second = retailers
        columns = ["name", "gtin", *_side_columns(first), *_side_columns(second), "difference"]
        echo_table(
            [_flat(p, last_seen=False, name_width=NAME_WIDTH) for p in result["rows"]],
            [*columns, *(["pairings"] if per_product else [])],
            f"{first} and {second}, largest difference first",
        )
        click.echo(_summary(result))
    if message is not None:  # on stderr after JSON or CSV, which stay parseable
        click.echo(message, err=as_json or as_csv)


def _nothing_to_compare(result: BothRetailers, present: list[str]) -> str:
    """Why there is no row: a retailer without SKUs, none sold by both, or the filters."""
    first, second = result["retailers"]
    missing = [c for c in result["retailers"] if c not in present]
    if missing:
        held = f"{present[0]} SKUs but no" if present else "no"
        return (
            f"Nothing to compare: the database holds {held} {' and no '.join(missing)} SKU; "
            f"import a product file of {' and '.join(missing)} first "
            "(coles-loader update --products)."
        )
    if not result["products"]:
        return (
            f"No product with a global GTIN is sold by both {first} and {second} "
            "(a product pairs when both retailers' rows carry the same global GTIN)."
        )
    return (
        f"{result['products']} products are sold by both {first} and {second}, but no "
        "pairing of their prices matches (the --store and --min-difference filters, or no "
        "price on one side)."
    )
