"""``coles-loader report`` (the HTML page) and ``runs`` (the run ledger)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from loaders.cli import CONTEXT, app_of, cli, json_option
from loaders.output import echo_json, echo_table

if TYPE_CHECKING:
    from collections.abc import Mapping

# The import-cycle counts shown by `runs --imports`, in the order shown.
IMPORT_COUNTS = (
    "files",
    "lines",
    "quarantined",
    "products_created",
    "barcodes_set",
    "merges",
    "conflicts",
    "price_changes",
)
IMPORT_COLUMNS = ("id", "started", "duration_s", "node", "finish_reason", *IMPORT_COUNTS)
CRAWL_COLUMNS = ("id", "started", "duration_s", "node", "spider", "job", "monitor")


@cli.command("report", context_settings=CONTEXT)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default="var/report.html",
    show_default=True,
    help="Where to write the HTML page (its folder is created).",
)
@click.option(
    "--runs",
    "run_count",
    type=click.IntRange(min=1),
    default=30,
    show_default=True,
    help="Crawl runs shown (the latest).",
)
@click.option(
    "--rows",
    type=click.IntRange(min=1),
    default=200,
    show_default=True,
    help="At most this many rows in the conflict, merge and failing-SKU tables.",
)
@click.option(
    "--differences",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Products in the 'Both retailers' table (the largest price differences).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Also print the figures behind the page as JSON (instead of its path).",
)
@click.pass_context
def report(
    ctx: click.Context, out: Path, run_count: int, rows: int, differences: int, as_json: bool
) -> None:
    """Write the data-quality report: one self-contained HTML page (inline CSS and SVG
    charts, nothing fetched when it is opened).

    \b
    It shows:
      barcode coverage per company and per store   (the figures of data-quality)
      both retailers: products sold by both, the largest price differences  (compare)
      coverage over time                           (products, lookups, import ledger)
      crawl outcomes per run, with the monitors' verdict   (the run ledger)
      open barcode conflicts and recent merges     (product ids link to details)
      SKUs whose lookup failed at least twice

    \b
    Example:
      coles-loader report --out var/report.html && xdg-open var/report.html
    """
    from colesbarcodes.db.engine import redact
    from loaders.report import write_report

    folder = out.parent  # made if missing; a file in the way is said before any work
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise click.ClickException(
            f"cannot write the report to {out}: {folder} is a file, not a folder; "
            "choose another --out"
        )
    app = app_of(ctx)
    try:
        result = write_report(
            app.engine(),
            out,
            source=redact(app.url),
            runs=run_count,
            rows=rows,
            differences=differences,
        )
    except OSError as exc:
        raise click.ClickException(
            f"cannot write the report to {out}: {exc.strerror or exc}; choose another --out"
        ) from None
    if as_json:
        echo_json({"out": str(out), **result})
        return
    totals = result["data_quality"]["totals"]
    click.echo(
        f"Report written to {out} ({totals['with_barcode']} of {totals['products']} products "
        f"with a barcode, {totals['barcode_pct']:.2f} %)"
    )


def _started(run: Mapping[str, Any]) -> str | None:
    return run["started_at"][:19].replace("T", " ") if run["started_at"] else None


@cli.command("runs", context_settings=CONTEXT)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="How many runs (the latest).",
)
@click.option(
    "--imports",
    is_flag=True,
    help="Show the product imports (coles-loader update cycles) instead of the crawls.",
)
@json_option
@click.pass_context
def runs(ctx: click.Context, limit: int, imports: bool, as_json: bool) -> None:
    """The latest barcode crawls from the run ledger, newest first: when, how long, on
    which host, the scrapyd job, the monitors' verdict, the finish reason and the SKUs per
    outcome (--json adds each run's full Scrapy stats).

    A crawl is written to the ledger when it ends; a crawl whose monitors failed shows
    "failed" and a finish reason like "monitor_failed: failed share 0.40 > 0.25". A
    distrusted crawl (its drift monitor failed, or the site answered unreadably) says why
    and how many SKUs without a barcode the next crawl asks again (asked_again).

    With --imports: the import cycles of `coles-loader update` instead (one per cycle
    that imported files or failed): when, how long, host, files, lines and what they
    changed, and "finished" or "failed: <error>".
    """
    from colesbarcodes.db import reports
    from colesbarcodes.db.engine import session_factory

    if imports:
        with session_factory(app_of(ctx).engine())() as session:
            imported = reports.import_runs(session, limit)
        if as_json:
            echo_json(imported)
            return
        echo_table(
            [
                {
                    **{k: r[k] for k in ("id", "duration_s", "node", "finish_reason")},
                    "started": _started(r),
                    **{k: r["counts"].get(k, 0) for k in IMPORT_COUNTS},
                }
                for r in imported
            ],
            IMPORT_COLUMNS,
            "Import runs",
        )
        return
    with session_factory(app_of(ctx).engine())() as session:
        result = reports.crawl_runs(session, limit, with_stats=as_json)
    if as_json:
        echo_json(result)
        return
    outcomes = sorted({o for r in result for o in r["outcomes"]})
    echo_table(
        [
            {
                **{k: r[k] for k in ("id", "spider", "job", "node", "duration_s", "skus")},
                "started": _started(r),
                "monitor": r["monitor_result"] or "off",
                "finish_reason": r["finish_reason"],
                "distrusted": r["distrust_reason"],
                "asked_again": r["asked_again"],
                **{o: r["outcomes"].get(o, 0) for o in outcomes},
            }
            for r in result
        ],
        [
            *CRAWL_COLUMNS,
            "finish_reason",
            *(("distrusted", "asked_again") if any(r["distrust_reason"] for r in result) else ()),
            "skus",
            *outcomes,
        ],
        "Crawl runs",
    )
