"""``coles-loader update`` and ``migrate``: the work is :func:`loaders.update.run_cycles`."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from loaders.cli import CONTEXT, DEFAULT_PRODUCT_INBOX, app_of, cli, inbox_option

if TYPE_CHECKING:
    from pathlib import Path

    from loaders.update import CycleReport, PostProcessReport


def _summary(report: CycleReport) -> str:
    stats = report.stats()
    rate = report.lines / report.seconds if report.seconds else 0.0
    return (
        f"{len(report.files)} files, {report.lines} lines ({rate:.0f} lines/s): "
        f"{stats.products_created} new products, {stats.skus_created} new SKUs, "
        f"{stats.barcodes_set} barcodes set, {stats.merges} merges, {stats.conflicts} conflicts, "
        f"{stats.price_changes} price changes, {report.quarantined} lines quarantined"
    )


def _post_summary(report: PostProcessReport) -> str:
    r, g = report.reconcile, report.groups
    return (
        f"post-processing: {r.merges} merges, {r.barcodes_normalized} barcodes and "
        f"{r.skus_normalized} SKUs normalised; {g.groups} product groups "
        f"(+{g.created} -{g.removed}, members +{g.members_added} -{g.members_removed})"
    )


def _echo_cycle(report: CycleReport, had_work: bool) -> None:
    from loaders.update import skipped_text, unknown_fields_text

    if report.files or not had_work:
        click.echo(_summary(report))
    for file_report in report.files:
        if file_report.quarantine_file is not None:
            click.echo(
                f"  {file_report.name}: {file_report.quarantined} lines quarantined, "
                f"{file_report.barcodes_rejected} barcodes rejected, "
                f"see {file_report.quarantine_file}"
            )
        if file_report.skipped:
            by_reason = skipped_text(file_report)
            click.echo(
                f"  {file_report.name}: {file_report.skipped} rows skipped"
                + (f" ({by_reason})" if by_reason else "")
            )
        if file_report.unknown_fields:
            click.echo(
                f"  {file_report.name}: fields the loader does not know, ignored: "
                f"{unknown_fields_text(file_report)}"
            )
    if report.post_process is not None:
        click.echo(_post_summary(report.post_process))


@cli.command(context_settings=CONTEXT)
@click.option(
    "--products", is_flag=True, help="Import the product inbox (the files of listing scrapes)."
)
@inbox_option(DEFAULT_PRODUCT_INBOX, "COLES_PRODUCT_INBOX", "Product inbox")
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
    default=100_000,
    show_default=True,
    help="Lines per transaction: a crash redoes at most one batch; larger batches read the "
    "catalogue and rewrite renamed products less often, and hold more in memory (about "
    "250 MB at the default).",
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
    A run that was killed resumes where it stopped. Lines without a company take it
    from the file name (woolworths_..., coles_...), else coles. After each file: its
    skipped rows by reason (ad, sponsored, marketplace) and, once, the fields the loader
    does not know, with the field each probably meant (Barcode -> barcode).

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
    app = app_of(ctx)
    if once and watch:
        raise click.UsageError("--once and --watch exclude each other")
    if not (products or post_process_only):
        raise click.UsageError("nothing to update: pass --products (or --post-process-only)")
    app.prepare()  # the schema is checked while the modules below are imported

    from colesbarcodes.inbox.claims import Inbox
    from loaders.importer import ImportOptions
    from loaders.update import (
        BarProgress,
        CycleInterrupted,
        LogProgress,
        TooManyFailedCycles,
        post_process,
        run_cycles,
    )

    if post_process_only:
        click.echo(_post_summary(post_process(app.engine())))
        return
    engine = app.engine()
    box = Inbox(inbox)
    box.ensure()
    show_bar = sys.stderr.isatty() if progress is None else progress
    try:
        run_cycles(
            engine,
            box,
            ImportOptions(batch_size=batch_size, archive=not delete_imported),
            BarProgress if show_bar else LogProgress,
            _echo_cycle,
            post=not no_post_process,
            once=once,
            watch=watch,
            pause=pause,
            max_failures=max_failures,
        )
    except CycleInterrupted:
        click.echo("Interrupted: the file in progress resumes on the next run.", err=True)
        ctx.exit(130)
    except TooManyFailedCycles as exc:
        raise click.ClickException(str(exc)) from None


@cli.command("migrate", context_settings=CONTEXT)
@click.pass_context
def migrate_command(ctx: click.Context) -> None:
    """Create or upgrade the database schema (other commands do this on their own)."""
    from colesbarcodes.db.engine import redact

    app = app_of(ctx)
    app.engine()
    click.echo(f"Schema up to date in {redact(app.url)}")
