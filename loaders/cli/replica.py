"""``coles-loader replica``: the offline replica of the retailer's site."""

from __future__ import annotations

import sys

import click

from loaders.cli import cli


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
