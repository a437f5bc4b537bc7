"""``coles-loader``: import product files, post-process, and look into the database.

Every command reads the database URL from ``--database-url`` or ``DATABASE_URL`` (default:
an SQLite file under ``var/``) and brings the schema up to date before it starts.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
import orjson
from sqlalchemy.exc import OperationalError

from colesbarcodes.db import reports
from colesbarcodes.db.engine import (
    DATABASE_ERRORS,
    error_detail,
    make_engine,
    migrate,
    redact,
    session_factory,
)
from colesbarcodes.db.engine import database_url as resolve_url
from colesbarcodes.db.lookups import skus_without_barcode
from colesbarcodes.files import atomic_file
from colesbarcodes.frontier.feed import feed_inbox
from colesbarcodes.frontier.stream import DEFAULT_KEY as DEFAULT_FRONTIER_KEY
from colesbarcodes.frontier.stream import FRONTIER_ERRORS, Frontier, redact_url
from colesbarcodes.inbox.claims import Inbox
from colesbarcodes.inbox.enrichment import EnrichmentInbox, write_enrichment_file
from colesbarcodes.inbox.lines import DEFAULT_COMPANY, LineError, normalize_sku, normalize_store_id
from loaders import diagnostics
from loaders.importer import ImportOptions
from loaders.output import echo_json, echo_mapping, echo_table
from loaders.scrapyd_nodes import (
    DEFAULT_NODE,
    NodeError,
    ScrapydNode,
    check_cron,
    next_run,
    parse_every,
)
from loaders.update import (
    BarProgress,
    CycleReport,
    LogProgress,
    post_process,
    recorded_import_run,
    run_cycle,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

logger = logging.getLogger("coles-loader")

DEFAULT_PRODUCT_INBOX = "inboxes/product_inbox"
DEFAULT_ENRICHMENT_INBOX = "inboxes/barcode_enrichment_inbox"
RECOVERABLE: tuple[type[Exception], ...] = (*DATABASE_ERRORS, OSError)
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@dataclass
class App:
    url: str
    _engine: Engine | None = None

    def engine(self) -> Engine:
        """The engine, with the schema migrated; a clear error if the database is unreachable."""
        if self._engine is None:
            engine = make_engine(self.url)
            try:
                migrate(engine)  # retries a connection cut meanwhile
            except OperationalError as exc:
                fail_database(self.url, exc)
            self._engine = engine
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def fail_database(url: str, exc: BaseException) -> NoReturn:
    detail = error_detail(exc)
    raise click.ClickException(f"cannot use the database {redact(url)}: {detail}")


def _configure_logging(verbose: int) -> None:
    level = logging.DEBUG if verbose > 1 else logging.INFO
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    if verbose < 2:
        logging.getLogger("sqlalchemy").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)
    else:  # -vv: the SQL too (SQLAlchemy keeps its engine logger at WARNING otherwise)
        logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)


@click.group(context_settings=CONTEXT)
@click.option(
    "--database-url",
    envvar="DATABASE_URL",
    metavar="URL",
    help="SQLAlchemy URL of the product database, e.g. postgresql://user@host/db "
    "(env DATABASE_URL; default: sqlite:///var/colesbarcodes.sqlite3).",
)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for SQL and debug).")
@click.version_option(package_name="colesbarcodes")
@click.pass_context
def cli(ctx: click.Context, database_url: str | None, verbose: int) -> None:
    """Keep a grocery product database complete: import product files from the inbox,
    reconcile products and barcodes, and inspect what is in the database.

    \b
    Typical use:
      coles-loader update --products        import every file in inboxes/product_inbox
      coles-loader data-quality             barcode coverage per company and store
      coles-loader report                   the same and more as an HTML page
      coles-loader inspect-product 42       everything known about one product
      coles-loader runs [--imports]         what ran: crawls, or import cycles
    \b
    Unattended and distributed crawls:
      coles-loader frontier feed            the enrichment inbox into the Redis frontier
      coles-loader schedule --every 30m     submit the crawl to scrapyd nodes
      coles-loader jobs                     what the scrapyd nodes run

    Run any command with --help for its options.
    """
    _configure_logging(verbose)
    ctx.obj = App(resolve_url(database_url))
    ctx.call_on_close(ctx.obj.close)


def _app(ctx: click.Context) -> App:
    app = ctx.find_object(App)
    if app is None:
        raise RuntimeError("no command context")
    return app


def _summary(report: CycleReport) -> str:
    stats = report.stats()
    rate = report.lines / report.seconds if report.seconds else 0.0
    return (
        f"{len(report.files)} files, {report.lines} lines ({rate:.0f} lines/s): "
        f"{stats.products_created} new products, {stats.skus_created} new SKUs, "
        f"{stats.barcodes_set} barcodes set, {stats.merges} merges, {stats.conflicts} conflicts, "
        f"{stats.price_changes} price changes, {report.quarantined} lines quarantined"
    )


def _post_summary(report: Any) -> str:
    r, g = report.reconcile, report.groups
    return (
        f"post-processing: {r.merges} merges, {r.barcodes_normalized} barcodes and "
        f"{r.skus_normalized} SKUs normalised; {g.groups} product groups "
        f"(+{g.created} -{g.removed}, members +{g.members_added} -{g.members_removed})"
    )


@cli.command(context_settings=CONTEXT)
@click.option(
    "--products", is_flag=True, help="Import the product inbox (the files of listing scrapes)."
)
@click.option(
    "--inbox",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_PRODUCT_INBOX,
    envvar="COLES_PRODUCT_INBOX",
    show_default=True,
    help="Product inbox folder (env COLES_PRODUCT_INBOX).",
)
@click.option("--once", is_flag=True, help="Run a single cycle, then exit.")
@click.option(
    "--watch",
    is_flag=True,
    help="Keep running: poll the inbox every --pause seconds when it is empty.",
)
@click.option(
    "--pause",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Seconds to wait after each successful cycle (skipped when the inbox is empty).",
)
@click.option(
    "--max-failures",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Stop after this many consecutive failed cycles.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=50_000,
    show_default=True,
    help="Lines per transaction.",
)
@click.option(
    "--post-process-only",
    is_flag=True,
    help="Skip imports; run reconciliation and group maintenance only.",
)
@click.option("--no-post-process", is_flag=True, help="Import only; skip post-processing.")
@click.option(
    "--delete-imported",
    is_flag=True,
    help="Delete imported files instead of moving them to archive/.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bar (default: on a terminal; plain log lines otherwise).",
)
@click.pass_context
def update(
    ctx: click.Context,
    products: bool,
    inbox: Path,
    once: bool,
    watch: bool,
    pause: float,
    max_failures: int,
    batch_size: int,
    post_process_only: bool,
    no_post_process: bool,
    delete_imported: bool,
    progress: bool | None,
) -> None:
    """Import product files from the inbox, then post-process.

    Every *.jsonl file in the inbox is imported, oldest first: claimed (moved to
    processing/), read in batches of --batch-size lines, each committed with the file's
    progress, and moved to archive/ once its last batch is in. Bad lines go to
    quarantine/ with their line number and reason; the rest of the file is imported.
    A run that was killed resumes where it stopped.

    Cycles repeat while the inbox has files (files that arrive during a cycle are taken by
    the next one), pausing --pause seconds between cycles; the command exits when the
    inbox is empty (--watch: keeps polling). Exit status: 0 when all went well, 1 after
    --max-failures failed cycles in a row, 2 for bad usage. Each cycle that imported
    files, or failed, is written to the run ledger (coles-loader runs --imports).

    \b
    Post-processing after each cycle (alone with --post-process-only):
      reconciliation  merges products that share a barcode or SKU left by older data
      groups          links products of different companies with the same brand,
                      name and size that have no barcode link
    """
    app = _app(ctx)
    if once and watch:
        raise click.UsageError("--once and --watch exclude each other")
    if post_process_only:
        click.echo(_post_summary(post_process(app.engine())))
        return
    if not products:
        raise click.UsageError("nothing to update: pass --products (or --post-process-only)")
    engine = app.engine()
    box = Inbox(inbox)
    box.ensure()
    options = ImportOptions(batch_size=batch_size, archive=not delete_imported)
    show_bar = sys.stderr.isatty() if progress is None else progress
    failures = 0
    while True:
        has_work = box.has_work()
        if has_work or not watch:
            try:
                reporter = BarProgress() if show_bar else LogProgress()
                with recorded_import_run(engine, box.root) as run:
                    report = run_cycle(
                        engine,
                        box,
                        options,
                        reporter,
                        post=not no_post_process,
                        on_file=run.file_done,
                    )
                    run.finish(report)
            except KeyboardInterrupt:
                click.echo("Interrupted: the file in progress resumes on the next run.", err=True)
                ctx.exit(130)
            except RECOVERABLE as exc:
                failures += 1
                detail = error_detail(exc)
                logger.error("Cycle failed (%d/%d in a row): %s", failures, max_failures, detail)
                logger.debug("Cycle failure", exc_info=True)
                if failures >= max_failures:
                    raise click.ClickException(
                        f"stopping after {failures} failed cycles in a row; last error: {detail}"
                    ) from None
                time.sleep(pause)
                continue
            failures = 0
            if report.files or not has_work:
                click.echo(_summary(report))
            for file_report in report.files:
                if file_report.quarantine_file is not None:
                    click.echo(
                        f"  {file_report.name}: {file_report.quarantined} lines quarantined, "
                        f"{file_report.barcodes_rejected} barcodes rejected, "
                        f"see {file_report.quarantine_file}"
                    )
            if report.post_process is not None:
                click.echo(_post_summary(report.post_process))
        if once:
            return
        if box.has_work() or watch:
            time.sleep(pause)
        else:
            return


def _company_option() -> Any:
    return click.option(
        "--company",
        default=DEFAULT_COMPANY,
        show_default=True,
        help="Company (retailer) of the SKU or store.",
    )


json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print JSON (for scripts) instead of a table."
)


@cli.command("analyze-jsonl", context_settings=CONTEXT)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@json_option
def analyze_jsonl(file: Path, as_json: bool) -> None:
    """Field presence and types per key in a JSON-lines FILE, and its bad lines.

    Needs no database: use it on a file before dropping it into the inbox.
    """
    result = diagnostics.analyze_jsonl(file)
    if as_json:
        echo_json(result)
        return
    echo_mapping(
        {
            k: result[k]
            for k in (
                "file",
                "lines",
                "objects",
                "importable",
                "skipped_rows",
                "bad_lines",
                "store_from_file_name",
            )
        },
        "File",
    )
    rows = [
        {**f, "types": ", ".join(f"{t}:{n}" for t, n in f["types"].items())}
        for f in result["fields"]
    ]
    echo_table(rows, ["field", "present", "pct", "types"], "Fields")
    if result["bad_examples"]:
        echo_table(result["bad_examples"], ["line", "reason"], "Bad lines (first examples)")


@cli.command("analyze-store", context_settings=CONTEXT)
@click.argument("store_id")
@_company_option()
@json_option
@click.pass_context
def analyze_store(ctx: click.Context, store_id: str, company: str, as_json: bool) -> None:
    """Field presence for the products of STORE_ID in the database."""
    store = _store_id(company, store_id)
    with session_factory(_app(ctx).engine())() as session:
        result = reports.analyze_store(session, company, store)
    if result is None:
        raise click.ClickException(f"no store {store!r} of {company} in the database")
    if as_json:
        echo_json(result)
        return
    echo_mapping(
        {k: result[k] for k in ("company", "store_id", "products", "first_seen", "last_seen")},
        "Store",
    )
    echo_table(
        [{"field": k, **v} for k, v in result["fields"].items()],
        ["field", "present", "pct"],
        "Fields",
    )


def _store_id(company: str, value: str) -> str:
    try:
        store = normalize_store_id(company, value)
    except LineError as exc:
        raise click.BadParameter(exc.reason, param_hint="STORE_ID") from None
    if store is None:
        raise click.BadParameter("empty store id", param_hint="STORE_ID")
    return store


@cli.command("find-sku", context_settings=CONTEXT)
@click.argument("sku")
@_company_option()
@json_option
@click.pass_context
def find_sku(ctx: click.Context, sku: str, company: str, as_json: bool) -> None:
    """The product a company SKU belongs to."""
    try:
        canonical = normalize_sku(company, sku)
    except LineError as exc:
        raise click.BadParameter(exc.reason, param_hint="SKU") from None
    with session_factory(_app(ctx).engine())() as session:
        result = reports.find_sku(session, company, canonical)
    if result is None:
        if as_json:
            echo_json(None)
        raise click.ClickException(f"{company} SKU {canonical} is not in the database")
    if as_json:
        echo_json(result)
    else:
        echo_mapping(result, f"{company} SKU {canonical}")


@cli.command("inspect-product", context_settings=CONTEXT)
@click.argument("product_id", type=int)
@json_option
@click.pass_context
def inspect_product(ctx: click.Context, product_id: int, as_json: bool) -> None:
    """Every field of a product: SKUs, prices per store, merges, conflicts, group."""
    with session_factory(_app(ctx).engine())() as session:
        result = reports.inspect_product(session, product_id)
    if result is None:
        raise click.ClickException(f"no product {product_id}")
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
    echo_table(
        result["prices"],
        [
            "company",
            "store_id",
            "sku",
            "price",
            "was_price",
            "unit_price",
            "available",
            "last_seen",
        ],
        "Prices",
    )
    echo_table(
        result["merges"], ["merged_id", "reason", "source", "at"], "Merged into this product"
    )
    echo_table(
        result["conflicts"],
        ["company", "sku", "existing_barcode", "offered_barcode", "reason", "source"],
        "Barcode conflicts",
    )


@cli.command("compare-store-skus", context_settings=CONTEXT)
@click.argument("store_id")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_company_option()
@json_option
@click.pass_context
def compare_store_skus(
    ctx: click.Context, store_id: str, file: Path, company: str, as_json: bool
) -> None:
    """SKUs of STORE_ID in both FILE and the database, only in the file, only in the database."""
    store = _store_id(company, store_id)
    skus, unreadable = diagnostics.file_skus(file, company)
    with session_factory(_app(ctx).engine())() as session:
        result = reports.compare_store_skus(session, company, store, skus)
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
    """Products, with SKU and with barcode (and %), per company and per store."""
    with session_factory(_app(ctx).engine())() as session:
        result = reports.data_quality(session)
    if as_json:
        echo_json(result)
        return
    echo_mapping(result["totals"], "All products")
    echo_table(
        result["companies"],
        ["company", "products", "with_sku", "with_barcode", "barcode_pct"],
        "Per company",
    )
    echo_table(
        result["stores"],
        ["company", "store_id", "products", "with_sku", "with_barcode", "barcode_pct"],
        "Per store",
    )


@cli.command("migrate", context_settings=CONTEXT)
@click.pass_context
def migrate_command(ctx: click.Context) -> None:
    """Create or upgrade the database schema (other commands do this on their own)."""
    app = _app(ctx)
    app.engine()
    click.echo(f"Schema up to date in {redact(app.url)}")


@cli.command("queue-missing-barcodes", context_settings=CONTEXT)
@_company_option()
@click.option("--store", "store_id", help="Only SKUs sold at this store.")
@click.option(
    "--inbox",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_ENRICHMENT_INBOX,
    envvar="COLES_ENRICHMENT_INBOX",
    show_default=True,
    help="Barcode-enrichment inbox folder (env COLES_ENRICHMENT_INBOX).",
)
@click.option("--limit", type=click.IntRange(min=1), help="At most this many SKUs.")
@click.pass_context
def queue_missing_barcodes(
    ctx: click.Context, company: str, store_id: str | None, inbox: Path, limit: int | None
) -> None:
    """Write the SKUs whose products have no barcode into the barcode-enrichment inbox,
    as one file for `scrapy crawl coles_barcodes` to take."""
    store = _store_id(company, store_id) if store_id else None
    with session_factory(_app(ctx).engine())() as session:
        missing = skus_without_barcode(session, company, store, limit)
    if not missing:
        click.echo(f"Every {company} SKU has a barcode: nothing to queue.")
        return
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    target = inbox / f"missing-{company}-{stamp}.jsonl"
    write_enrichment_file(target, missing, company)
    click.echo(f"Queued {len(missing)} {company} SKUs without barcode: {target}")


@cli.command(
    "replica",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def replica(args: tuple[str, ...]) -> None:
    """Serve the offline replica of the retailer's site on 127.0.0.1 (for trying the crawl
    without the real site). All options are the replica's: see `coles-loader replica --help`.
    """
    from colesbarcodes.replica.runner import main as replica_main

    sys.exit(replica_main(list(args), prog="coles-loader replica"))


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
    "--json",
    "as_json",
    is_flag=True,
    help="Also print the figures behind the page as JSON (instead of its path).",
)
@click.pass_context
def report(ctx: click.Context, out: Path, run_count: int, rows: int, as_json: bool) -> None:
    """Write the data-quality report: one self-contained HTML page (inline CSS and SVG
    charts, nothing fetched when it is opened).

    \b
    It shows:
      barcode coverage per company and per store   (the figures of data-quality)
      coverage over time                           (products, lookups, import ledger)
      crawl outcomes per run, with the monitors' verdict   (the run ledger)
      open barcode conflicts and recent merges     (product ids link to details)
      SKUs whose lookup failed at least twice

    \b
    Example:
      coles-loader report --out var/report.html && xdg-open var/report.html
    """
    from loaders.report import render_report

    app = _app(ctx)
    with session_factory(app.engine())() as session:
        result = reports.quality_report(session, runs=run_count, rows=rows)
    page = render_report(result, source=redact(app.url))
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(out) as handle:
        handle.write(page.encode())
    if as_json:
        echo_json({"out": str(out), **result})
        return
    totals = result["data_quality"]["totals"]
    click.echo(
        f"Report written to {out} ({totals['with_barcode']} of {totals['products']} products "
        f"with a barcode, {totals['barcode_pct']:.2f} %)"
    )


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
    "failed" and a finish reason like "monitor_failed: failed share 0.40 > 0.25".

    With --imports: the import cycles of `coles-loader update` instead (one per cycle
    that imported files or failed): when, how long, host, files, lines and what they
    changed, and "finished" or "failed: <error>".
    """
    if imports:
        with session_factory(_app(ctx).engine())() as session:
            imported = reports.import_runs(session, limit)
        if as_json:
            echo_json(imported)
            return
        echo_table(
            [
                {
                    **{k: r[k] for k in ("id", "duration_s", "node", "finish_reason")},
                    "started": r["started_at"][:19].replace("T", " ") if r["started_at"] else None,
                    **{
                        k: r["counts"].get(k, 0)
                        for k in (
                            "files",
                            "lines",
                            "quarantined",
                            "products_created",
                            "barcodes_set",
                            "merges",
                            "conflicts",
                            "price_changes",
                        )
                    },
                }
                for r in imported
            ],
            [
                "id",
                "started",
                "duration_s",
                "node",
                "finish_reason",
                "files",
                "lines",
                "quarantined",
                "products_created",
                "barcodes_set",
                "merges",
                "conflicts",
                "price_changes",
            ],
            "Import runs",
        )
        return
    with session_factory(_app(ctx).engine())() as session:
        result = reports.crawl_runs(session, limit, with_stats=as_json)
    if as_json:
        echo_json(result)
        return
    outcomes = sorted({o for r in result for o in r["outcomes"]})
    echo_table(
        [
            {
                **{k: r[k] for k in ("id", "spider", "job", "node", "duration_s", "skus")},
                "started": r["started_at"][:19].replace("T", " ") if r["started_at"] else None,
                "monitor": r["monitor_result"] or "off",
                "finish_reason": r["finish_reason"],
                **{o: r["outcomes"].get(o, 0) for o in outcomes},
            }
            for r in result
        ],
        [
            "id",
            "started",
            "duration_s",
            "node",
            "spider",
            "job",
            "monitor",
            "finish_reason",
            "skus",
            *outcomes,
        ],
        "Crawl runs",
    )


# --- Scheduled and distributed crawls: scrapyd nodes and the shared frontier -------------

node_option = click.option(
    "--node",
    "nodes",
    multiple=True,
    envvar="SCRAPYD_URL",
    metavar="URL",
    help="A scrapyd node; repeat for several (env SCRAPYD_URL, space-separated; default "
    f"{DEFAULT_NODE}). Credentials: SCRAPYD_USERNAME and SCRAPYD_PASSWORD, or "
    "user:password@ in the URL; they are never printed.",
)
project_option = click.option(
    "--project",
    default="colesbarcodes",
    envvar="SCRAPYD_PROJECT",
    show_default=True,
    help="The scrapyd project (env SCRAPYD_PROJECT).",
)


def _nodes(urls: tuple[str, ...]) -> list[ScrapydNode]:
    try:
        return [ScrapydNode.parse(url) for url in (urls or (DEFAULT_NODE,))]
    except NodeError as exc:
        raise click.BadParameter(str(exc), param_hint="--node") from None


def _pairs(values: tuple[str, ...], hint: str) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        name, sep, setting = value.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"{value!r} is not NAME=VALUE", param_hint=hint)
        pairs.append((name.strip(), setting))
    return pairs


def _submit_round(
    nodes: list[ScrapydNode],
    project: str,
    spider: str,
    settings: list[str],
    arguments: list[tuple[str, str]],
    version: str | None,
    overlap: bool,
) -> list[dict[str, Any]]:
    """Submit the spider to every node; one result per node (submitted, skipped, error)."""
    results: list[dict[str, Any]] = []
    for node in nodes:
        result: dict[str, Any] = {"node": node.url, "spider": spider}
        try:
            if not overlap:
                jobs = node.list_jobs(project)
                busy = [
                    (state, job)
                    for state in ("running", "pending")
                    for job in jobs[state]
                    if job.get("spider") == spider
                ]
                if busy:
                    state, job = busy[0]
                    results.append(
                        {**result, "status": "skipped", "job": job.get("id"), "state": state}
                    )
                    continue
            job_id = node.schedule(
                project, spider, settings=settings, arguments=arguments, version=version
            )
            results.append({**result, "status": "submitted", "job": job_id})
        except NodeError as exc:
            results.append({**result, "status": "error", "error": str(exc)})
    return results


def _echo_round(results: list[dict[str, Any]], as_json: bool, *, stream: bool = False) -> None:
    if as_json:
        if stream:
            click.echo(orjson.dumps(results).decode())
        else:
            echo_json(results)
        return
    for r in results:
        if r["status"] == "submitted":
            click.echo(f"{r['node']}: submitted {r['spider']} as job {r['job']}")
        elif r["status"] == "skipped":
            click.echo(
                f"{r['node']}: not submitted: job {r['job']} of {r['spider']} is still {r['state']}"
            )
        else:
            click.echo(f"Error: {r['error']}", err=True)


@cli.command("schedule", context_settings=CONTEXT)
@node_option
@project_option
@click.option("--spider", default="coles_barcodes", show_default=True, help="The spider to run.")
@click.option(
    "-s",
    "--setting",
    "settings",
    multiple=True,
    metavar="NAME=VALUE",
    help="A Scrapy setting for the job (repeat), e.g. -s COLES_MAX_SKUS=5000.",
)
@click.option(
    "-a",
    "--arg",
    "arguments",
    multiple=True,
    metavar="NAME=VALUE",
    help="A spider argument for the job (repeat), e.g. -a store=0601.",
)
@click.option(
    "--egg-version",
    metavar="VERSION",
    help="Run this deployed version of the project (default: the latest).",
)
@click.option(
    "--once",
    is_flag=True,
    help="Submit once and exit (what happens without --every and --cron).",
)
@click.option(
    "--every",
    metavar="INTERVAL",
    help="Submit now, then every INTERVAL: 90s, 30m, 2h, 1d.",
)
@click.option(
    "--cron",
    metavar="EXPRESSION",
    help="Submit at the times of a cron expression, local time: '*/30 * * * *'. "
    "With --every too: whichever comes first.",
)
@click.option(
    "--overlap",
    is_flag=True,
    help="Submit even when the spider still has a job pending or running on that node "
    "(by default that node is skipped this time).",
)
@click.option(
    "--max-runs",
    type=click.IntRange(min=1),
    help="With --every/--cron: stop after this many submission rounds.",
)
@click.option(
    "--max-failures",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="With --every/--cron: stop after this many rounds in a row with a failed node.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print each round's results as JSON (one line per round when repeating).",
)
@click.pass_context
def schedule(
    ctx: click.Context,
    nodes: tuple[str, ...],
    project: str,
    spider: str,
    settings: tuple[str, ...],
    arguments: tuple[str, ...],
    egg_version: str | None,
    once: bool,
    every: str | None,
    cron: str | None,
    overlap: bool,
    max_runs: int | None,
    max_failures: int,
    as_json: bool,
) -> None:
    """Submit crawls to scrapyd nodes: once, every INTERVAL, or on a cron schedule.

    Each round submits the spider (default coles_barcodes) to every --node through
    scrapyd's schedule.json, with the given settings and arguments; a node where the
    spider still has a job pending or running is skipped that round (--overlap submits
    anyway). A node that cannot be reached, or refuses the credentials, is reported in
    one line and the others still get their job. Exit status: 0 when every node took
    the job (or was skipped), 1 when a node failed (repeating: after --max-failures
    such rounds in a row), 2 for bad usage.

    \b
    Once, from cron or a systemd timer (the schedule is theirs):
      coles-loader schedule --node http://crawler-1:6800 --node http://crawler-2:6800
    Repeating, as a long-running service:
      coles-loader schedule --every 30m --node http://127.0.0.1:6800
      coles-loader schedule --cron '0 2 * * *' -s COLES_MAX_SKUS=20000

    \b
    Several nodes sharing one SKU frontier: feed it, then schedule on each node
    (each node's scrapyd has COLES_FRONTIER_URL in its environment):
      coles-loader queue-missing-barcodes && coles-loader frontier feed
      coles-loader schedule --node http://crawler-1:6800 --node http://crawler-2:6800

    Product imports are not scrapyd jobs: run `coles-loader update --products --once`
    from cron or a timer on the machine that holds the product inbox (each cycle is in
    `coles-loader runs --imports`). See `coles-loader jobs` for what the nodes run.
    """
    if once and (every or cron):
        raise click.UsageError("--once excludes --every and --cron")
    try:
        interval = parse_every(every) if every else None
        expression = check_cron(cron) if cron else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--every/--cron") from None
    targets = _nodes(nodes)
    setting_pairs = [f"{name}={value}" for name, value in _pairs(settings, "--setting")]
    argument_pairs = _pairs(arguments, "--arg")

    def submit(stream: bool) -> int:
        results = _submit_round(
            targets, project, spider, setting_pairs, argument_pairs, egg_version, overlap
        )
        _echo_round(results, as_json, stream=stream)
        return sum(r["status"] == "error" for r in results)

    if interval is None and expression is None:
        failed = submit(stream=False)
        if failed:
            raise click.ClickException(f"{failed} of {len(targets)} nodes did not take the job")
        return
    last: datetime | None = None
    rounds = failures = 0
    try:
        while True:
            now = datetime.now().astimezone()
            when = next_run(now, interval, last, expression)
            wait = (when - now).total_seconds()
            if wait > 0:
                logger.info("Next submission at %s", when.isoformat(timespec="seconds"))
                time.sleep(wait)
            failed = submit(stream=True)
            last, rounds = when, rounds + 1
            failures = failures + 1 if failed else 0
            if failures >= max_failures:
                raise click.ClickException(
                    f"stopping after {failures} rounds in a row with a failed node"
                )
            if max_runs and rounds >= max_runs:
                return
    except KeyboardInterrupt:
        click.echo("Stopped.", err=True)
        ctx.exit(130)


def _duration(job: dict[str, Any]) -> float | None:
    try:
        start = datetime.fromisoformat(str(job["start_time"]))
        end = datetime.fromisoformat(str(job["end_time"]))
    except (KeyError, ValueError):
        return None
    return round((end - start).total_seconds(), 1)


@cli.command("jobs", context_settings=CONTEXT)
@node_option
@project_option
@click.option(
    "--finished",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="Finished jobs shown per node (the latest).",
)
@json_option
def jobs(nodes: tuple[str, ...], project: str, finished: int, as_json: bool) -> None:
    """What the scrapyd nodes run: each node's status (daemonstatus.json) and the
    project's pending, running and finished jobs (listjobs.json).

    A node that cannot be reached, or refuses the credentials, shows its error; the
    exit status is then 1 (0 when every node answered). Job arguments and settings are
    never shown (they may hold secrets such as a Redis password).

    \b
    Example:
      coles-loader jobs --node http://crawler-1:6800 --node http://crawler-2:6800
      coles-loader jobs --json | jq '.[].jobs.running'
    """
    result: list[dict[str, Any]] = []
    for node in _nodes(nodes):
        entry: dict[str, Any] = {"node": node.url}
        try:
            entry["status"] = node.daemon_status()
            listed = node.list_jobs(project)
        except NodeError as exc:
            entry["error"] = str(exc)
            result.append(entry)
            continue
        listed["finished"] = sorted(
            listed["finished"], key=lambda j: str(j.get("end_time", "")), reverse=True
        )[:finished]
        for job in listed["finished"]:
            job["duration_s"] = _duration(job)
        entry["jobs"] = listed
        result.append(entry)
    failed = [e for e in result if "error" in e]
    if as_json:
        echo_json(result)
    else:
        echo_table(
            [
                {
                    "node": e["node"],
                    "status": e["status"].get("status", "?") if "status" in e else "error",
                    "node_name": e.get("status", {}).get("node_name"),
                    **{
                        state: len(e["jobs"][state]) if "jobs" in e else None
                        for state in ("pending", "running")
                    },
                    "finished": e.get("status", {}).get("finished"),
                }
                for e in result
            ],
            ["node", "status", "node_name", "pending", "running", "finished"],
            "Nodes",
        )
        echo_table(
            [
                {
                    "node": e["node"],
                    "state": state,
                    "spider": job.get("spider"),
                    "job": job.get("id"),
                    "started": str(job.get("start_time", ""))[:19] or None,
                    "ended": str(job.get("end_time", ""))[:19] or None,
                    "duration_s": job.get("duration_s"),
                }
                for e in result
                if "jobs" in e
                for state in ("running", "pending", "finished")
                for job in e["jobs"][state]
            ],
            ["node", "state", "spider", "job", "started", "ended", "duration_s"],
            f"Jobs of {project}",
        )
        for e in failed:
            click.echo(f"Error: {e['error']}", err=True)
    if failed:
        sys.exit(1)


redis_option = click.option(
    "--redis",
    "redis_url",
    envvar="COLES_FRONTIER_URL",
    required=True,
    metavar="URL",
    help="The frontier's Redis: redis://[:password@]host:6379/0 (env COLES_FRONTIER_URL).",
)
key_option = click.option(
    "--key",
    envvar="COLES_FRONTIER_KEY",
    default=DEFAULT_FRONTIER_KEY,
    show_default=True,
    help="Prefix of the frontier's Redis keys (env COLES_FRONTIER_KEY).",
)


def _frontier(url: str, key: str) -> Frontier:
    try:
        frontier = Frontier.from_url(url, key)
        frontier.ensure_group()
    except FRONTIER_ERRORS as exc:
        raise click.ClickException(f"cannot use the frontier at {redact_url(url)}: {exc}") from None
    return frontier


@cli.group("frontier", context_settings=CONTEXT)
def frontier_group() -> None:
    """The shared SKU frontier in Redis, for several crawl processes on one or many
    machines.

    `frontier feed` moves the barcode-enrichment inbox into it; crawls started with
    COLES_FRONTIER_URL set (or -a frontier=URL) take SKUs from it, acknowledge each
    SKU once its outcome is stored, and take back the SKUs of a worker that died after
    COLES_FRONTIER_CLAIM_TIMEOUT seconds. `frontier status` shows how far it is.

    \b
    Example:
      export COLES_FRONTIER_URL=redis://127.0.0.1:6379/0
      coles-loader queue-missing-barcodes && coles-loader frontier feed
      scrapy crawl coles_barcodes &  scrapy crawl coles_barcodes &   # two workers
      coles-loader frontier status
    """


@frontier_group.command("feed", context_settings=CONTEXT)
@redis_option
@key_option
@click.option(
    "--inbox",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_ENRICHMENT_INBOX,
    envvar="COLES_ENRICHMENT_INBOX",
    show_default=True,
    help="Barcode-enrichment inbox folder (env COLES_ENRICHMENT_INBOX).",
)
@click.option(
    "--retry-failed/--no-retry-failed",
    default=True,
    show_default=True,
    help="Feed again the SKUs whose lookup failed after retries in an earlier crawl.",
)
@json_option
def frontier_feed(redis_url: str, key: str, inbox: Path, retry_failed: bool, as_json: bool) -> None:
    """Feed the barcode-enrichment inbox into the frontier.

    Every *.jsonl file of the inbox is taken like the crawl takes it (oldest first,
    SKUs de-duplicated, bad lines quarantined), its SKUs are added to the stream, and
    only then is it moved to archive/. A SKU already waiting or in flight is not added
    again, so feeding twice is harmless; a feed that fails leaves its file in
    processing/ for the next one.
    """
    frontier = _frontier(redis_url, key)
    enrichment = EnrichmentInbox(inbox, company=DEFAULT_COMPANY, archive=True)
    try:
        report = feed_inbox(frontier, enrichment, retry_failed=retry_failed)
    except FRONTIER_ERRORS as exc:
        raise click.ClickException(
            f"feeding the frontier at {redact_url(redis_url)} failed: {exc}"
        ) from None
    finally:
        frontier.close()
    if as_json:
        echo_json(
            {
                "added": report.added,
                "already_queued": report.already_queued,
                "retried_failed": report.retried.added,
                "files": [dataclasses.asdict(f) for f in report.files],
            }
        )
        return
    for f in report.files:
        click.echo(
            f"{f.name}: {f.skus} SKUs, {f.added} added, {f.already_queued} already in the "
            f"frontier, {f.quarantined} lines quarantined"
        )
    click.echo(
        f"Fed {report.added} SKUs into {key} ({report.already_queued} were already there"
        f"{f', {report.retried.added} failed ones again' if report.retried.added else ''})"
    )


@frontier_group.command("status", context_settings=CONTEXT)
@redis_option
@key_option
@json_option
def frontier_status(redis_url: str, key: str, as_json: bool) -> None:
    """SKUs waiting, in flight (taken by a worker, outcome not stored yet) and failed,
    and each worker's share (workers are named host:pid[:scrapyd job])."""
    frontier = _frontier(redis_url, key)
    try:
        status = frontier.status()
    except FRONTIER_ERRORS as exc:
        raise click.ClickException(
            f"cannot read the frontier at {redact_url(redis_url)}: {exc}"
        ) from None
    finally:
        frontier.close()
    if as_json:
        echo_json(status.to_json())
        return
    echo_mapping(
        {
            "key": status.key,
            "waiting": status.waiting,
            "in_flight": status.in_flight,
            "failed": status.failed,
        },
        "Frontier",
    )
    echo_table(
        [
            {"worker": c.name, "in_flight": c.in_flight, "idle_s": c.idle_s}
            for c in status.consumers
        ],
        ["worker", "in_flight", "idle_s"],
        "Workers",
    )


def main() -> None:
    os.environ.setdefault("PYTHONIOENCODING", "utf-8")
    cli(prog_name="coles-loader")
