"""``coles-loader frontier``: the shared SKU frontier in Redis (imported when used)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import click

from colesbarcodes.frontier import DEFAULT_KEY as DEFAULT_FRONTIER_KEY
from loaders.cli import (
    CONTEXT,
    DEFAULT_ENRICHMENT_INBOX,
    cli,
    inbox_option,
    json_option,
    not_empty,
)
from loaders.output import echo_json, echo_mapping, echo_table

if TYPE_CHECKING:
    from pathlib import Path

    from colesbarcodes.frontier.stream import Frontier

REDIS_URL_FORM = "redis://[:PASSWORD@]HOST:6379/0"


def _redis_url(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """A Redis URL redis-py can use as given (it reads ``redis://host/abc`` as database 0,
    and ``nonsense`` fails only when connecting); the password masked in the message."""
    from urllib.parse import urlsplit

    from colesbarcodes.frontier.stream import redact_url

    shown = redact_url(value)
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        problem = "its port is not a number from 0 to 65535"
    else:
        database = parts.path.lstrip("/")
        if parts.scheme not in ("redis", "rediss", "unix"):
            problem = "not a Redis URL"
        elif parts.scheme == "unix":
            problem = "" if parts.path else "no socket path"
        elif not parts.hostname:
            problem = "no host"
        elif database and not database.isdigit():
            problem = f"the database number {database!r} is not a whole number"
        else:
            problem = ""
    if problem:
        raise click.BadParameter(f"{shown}: {problem}; use {REDIS_URL_FORM}", ctx=ctx, param=param)
    return value


_UNREACHABLE = "(is Redis running there? Check --redis or COLES_FRONTIER_URL)"

redis_option = click.option(
    "--redis",
    "redis_url",
    envvar="COLES_FRONTIER_URL",
    required=True,
    callback=_redis_url,
    metavar="URL",
    help="The frontier's Redis: redis://[:password@]host:6379/0 (env COLES_FRONTIER_URL).",
)
key_option = click.option(
    "--key",
    envvar="COLES_FRONTIER_KEY",
    default=DEFAULT_FRONTIER_KEY,
    show_default=True,
    callback=not_empty,
    help="Prefix of the frontier's Redis keys (env COLES_FRONTIER_KEY).",
)

STATUS_FIELDS = ("key", "waiting", "in_flight", "failed")


def _frontier(url: str, key: str) -> Frontier:
    from colesbarcodes.frontier.stream import FRONTIER_ERRORS, Frontier, redact_url

    try:
        frontier = Frontier.from_url(url, key)
        frontier.ensure_group()
    except FRONTIER_ERRORS as exc:
        raise click.ClickException(
            f"cannot use the frontier at {redact_url(url)}: {exc} {_UNREACHABLE}"
        ) from None
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
@inbox_option(DEFAULT_ENRICHMENT_INBOX, "COLES_ENRICHMENT_INBOX", "Barcode-enrichment inbox")
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
    from colesbarcodes.frontier.feed import feed_inbox
    from colesbarcodes.frontier.stream import FRONTIER_ERRORS, redact_url
    from colesbarcodes.inbox.enrichment import EnrichmentInbox
    from colesbarcodes.inbox.lines import DEFAULT_COMPANY

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
    from colesbarcodes.frontier.stream import FRONTIER_ERRORS, redact_url

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
    echo_mapping({k: getattr(status, k) for k in STATUS_FIELDS}, "Frontier")
    echo_table(
        [
            {"worker": c.name, "in_flight": c.in_flight, "idle_s": c.idle_s}
            for c in status.consumers
        ],
        ["worker", "in_flight", "idle_s"],
        "Workers",
    )
