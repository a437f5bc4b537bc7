"""``coles-loader schedule`` and ``jobs``: crawls on scrapyd nodes. The work is in
:mod:`loaders.scrapyd_nodes`."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click
import orjson

from loaders.cli import CONTEXT, cli, json_option, not_empty
from loaders.output import echo_json, echo_table
from loaders.scrapyd_nodes import DEFAULT_NODE

if TYPE_CHECKING:
    from loaders.scrapyd_nodes import ScrapydNode

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
    callback=not_empty,
    help="The scrapyd project (env SCRAPYD_PROJECT).",
)

NODE_COLUMNS = ("node", "status", "node_name", "pending", "running", "finished")
JOB_COLUMNS = ("node", "state", "spider", "job", "started", "ended", "duration_s")


def _nodes(urls: tuple[str, ...]) -> list[ScrapydNode]:
    from loaders.scrapyd_nodes import NodeError, ScrapydNode

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
@click.option(
    "--spider",
    default="coles_barcodes",
    show_default=True,
    callback=not_empty,
    help="The spider to run.",
)
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
    callback=not_empty,
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
    callback=not_empty,
    help="Submit now, then every INTERVAL: 90s, 30m, 2h, 1d.",
)
@click.option(
    "--cron",
    metavar="EXPRESSION",
    callback=not_empty,
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
    from loaders.scrapyd_nodes import (
        Submission,
        TooManyFailedRounds,
        check_cron,
        failed_nodes,
        parse_every,
        run_schedule,
        submit_round,
    )

    if once and (every or cron):
        raise click.UsageError("--once excludes --every and --cron")
    try:
        interval = parse_every(every) if every is not None else None
        expression = check_cron(cron) if cron is not None else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--every/--cron") from None
    submission = Submission(
        nodes=_nodes(nodes),
        project=project,
        spider=spider,
        settings=[f"{name}={value}" for name, value in _pairs(settings, "--setting")],
        arguments=_pairs(arguments, "--arg"),
        version=egg_version,
        overlap=overlap,
    )
    if interval is None and expression is None:
        results = submit_round(submission)
        _echo_round(results, as_json)  # a table: a failed node is one "Error: ..." line
        failed = failed_nodes(results)
        if failed and as_json:
            click.echo(
                f"Error: {failed} of {len(submission.nodes)} nodes did not take the job", err=True
            )
        if failed:
            ctx.exit(1)
        return
    try:
        run_schedule(
            submission,
            lambda results: _echo_round(results, as_json, stream=True),
            every=interval,
            cron=expression,
            max_runs=max_runs,
            max_failures=max_failures,
        )
    except TooManyFailedRounds as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        click.echo("Stopped.", err=True)
        ctx.exit(130)


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
    from loaders.scrapyd_nodes import node_jobs

    result = node_jobs(_nodes(nodes), project, finished)
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
            NODE_COLUMNS,
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
            JOB_COLUMNS,
            f"Jobs of {project}",
        )
        for e in failed:
            click.echo(f"Error: {e['error']}", err=True)
    if failed:
        sys.exit(1)
