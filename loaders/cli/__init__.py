"""``coles-loader``: import product files, post-process, and look into the database.

Every command reads the database URL from ``--database-url`` or ``DATABASE_URL`` (default:
an SQLite file under ``var/``) and brings the schema up to date before it starts.

The commands only parse their arguments, call the functions that do the work and print
what they return, one module per group of commands: ``update`` (update, migrate),
``diagnostics``, ``compare``, ``report`` (report, runs), ``scrapyd`` (schedule, jobs), ``frontier``
and ``replica``. A command's module is loaded when the command runs (``COMMAND_MODULES``),
and what the command needs beyond it is imported inside it.
"""

from __future__ import annotations

import atexit
import gc
import importlib
import logging
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from colesbarcodes.inbox.lines import DEFAULT_COMPANY

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__ = ["COMMAND_MODULES", "CONTEXT", "App", "CommandGroup", "cli", "main"]

DEFAULT_PRODUCT_INBOX = "inboxes/product_inbox"
DEFAULT_ENRICHMENT_INBOX = "inboxes/barcode_enrichment_inbox"
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@dataclass
class App:
    url: str
    _engine: Engine | None = None
    _preparing: _Preparation | None = None

    def prepare(self) -> None:
        """Connect and bring the schema up to date in the background, while the command
        imports what it needs (:meth:`engine` waits for it): the server creates or checks
        the schema meanwhile (a new database's ~60 ms), not after the imports. A URL the
        project does not support is a one-line error at once."""
        if self._engine is None:
            self._preparation()

    def _preparation(self) -> _Preparation:
        from colesbarcodes.db.engine import DatabaseUrlError, make_engine

        if self._preparing is None:
            try:
                engine = make_engine(self.url)
            except DatabaseUrlError as exc:
                raise click.ClickException(f"cannot use the database {exc}") from None
            self._preparing = _Preparation(engine)
        return self._preparing

    def engine(self) -> Engine:
        """The engine, with the schema migrated; a one-line error if the URL is not one the
        project supports, or the database cannot be reached or used."""
        from colesbarcodes.db.engine import DATABASE_ERRORS

        if self._engine is None:
            preparing = self._preparation()
            try:
                preparing.wait()  # the migration retries a connection cut meanwhile
            except DATABASE_ERRORS as exc:
                preparing.engine.dispose()
                self._preparing = None
                fail_database(self.url, exc)
            self._engine, self._preparing = preparing.engine, None
        return self._engine

    def close(self) -> None:
        if self._preparing is not None:
            self._preparing.abandon()
            self._preparing = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


class _Preparation:
    """The schema migrated on a thread of its own (:meth:`App.prepare`)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="migrate", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from colesbarcodes.db.engine import migrate

        try:
            migrate(self.engine)
        except BaseException as exc:  # handed to the command's thread by wait()
            self._error = exc

    def wait(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error

    def abandon(self) -> None:
        """The command ended without the engine (an error before it needed it): the
        migration is let finish (it holds the migration lock), then the engine closed."""
        self._thread.join()
        self.engine.dispose()


def fail_database(url: str, exc: BaseException) -> NoReturn:
    from colesbarcodes.db.engine import error_detail, redact

    detail = error_detail(exc)
    hint = "check --database-url or DATABASE_URL"
    if not url.startswith("sqlite"):
        hint += ", and that the database server is running"
    raise click.ClickException(f"cannot use the database {redact(url)}: {detail} ({hint})")


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


# Each command's module (loaded when the command runs, or when --help lists them all): a
# command starts without importing the others and what they need (~15 ms, measured).
COMMAND_MODULES = {
    "analyze-jsonl": "diagnostics",
    "analyze-store": "diagnostics",
    "compare": "compare",
    "compare-store-skus": "diagnostics",
    "data-quality": "diagnostics",
    "find-sku": "diagnostics",
    "frontier": "frontier",
    "inspect-product": "diagnostics",
    "jobs": "scrapyd",
    "migrate": "update",
    "queue-missing-barcodes": "diagnostics",
    "replica": "replica",
    "report": "report",
    "runs": "report",
    "schedule": "scrapyd",
    "update": "update",
}


class CommandGroup(click.Group):
    """The commands of ``coles-loader``, each loaded from its module when first asked for
    (``COMMAND_MODULES``; the module registers it with ``@cli.command``)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMAND_MODULES) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMAND_MODULES:
            importlib.import_module(f"{__name__}.{COMMAND_MODULES[cmd_name]}")
        return self.commands.get(cmd_name)


@click.group(cls=CommandGroup, context_settings=CONTEXT)
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
      coles-loader compare                  products both retailers sell, prices side by side
      coles-loader inspect-product 42       everything known about one product
      coles-loader runs [--imports]         what ran: crawls, or import cycles
    \b
    Unattended and distributed crawls:
      coles-loader frontier feed            the enrichment inbox into the Redis frontier
      coles-loader schedule --every 30m     submit the crawl to scrapyd nodes
      coles-loader jobs                     what the scrapyd nodes run

    Run any command with --help for its options.
    """
    from colesbarcodes.db.engine import database_url as resolve_url

    if database_url is not None and not database_url.strip():
        raise click.BadParameter(
            "is empty: give a database URL, or leave the option out for the default",
            param_hint="'--database-url'",
        )
    _configure_logging(verbose)
    # SQLAlchemy and psycopg are imported, the bulk of the start-up; every command goes
    # through here, those that never make an engine too (replica, frontier, scrapyd)
    collect_from_here()
    ctx.obj = App(resolve_url(database_url))
    ctx.call_on_close(ctx.obj.close)


def app_of(ctx: click.Context) -> App:
    app = ctx.find_object(App)
    if app is None:
        raise RuntimeError("no command context")
    return app


def company_option() -> Any:
    return click.option(
        "--company",
        default=DEFAULT_COMPANY,
        show_default=True,
        help="Company (retailer) of the SKU or store.",
    )


def inbox_option(default: str, envvar: str, what: str) -> Any:
    """``--inbox``: a folder that must exist (:func:`existing_folder`, which also words the
    error for one that cannot be read, so Click's own check is off)."""
    return click.option(
        "--inbox",
        type=click.Path(path_type=Path, readable=False),
        callback=existing_folder,
        default=default,
        envvar=envvar,
        show_default=True,
        help=f"{what} folder (env {envvar}).",
    )


json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print JSON (for scripts) instead of a table."
)


def store_id(company: str, value: str, hint: str = "STORE_ID") -> str:
    """A store id argument or option in its canonical form, or a usage error."""
    from colesbarcodes.inbox.lines import LineError, normalize_store_id

    try:
        store = normalize_store_id(company, value)
    except LineError as exc:
        raise click.BadParameter(exc.reason, param_hint=hint) from None
    if store is None:
        raise click.BadParameter("empty store id", param_hint=hint)
    return store


def existing_folder(ctx: click.Context, param: click.Parameter, value: Path) -> Path:
    """An inbox folder option: the folder must exist and be usable. Commands never create
    an inbox (only its processing/, archive/ and quarantine/ folders): a typo in a path
    would otherwise look like an empty inbox."""
    names = [f"--{param.name}"] + [f"env {e}" for e in _envvars(param)]
    where = " or ".join(names)
    if not value.exists():
        message = f"the folder {value} does not exist: create it, or give the right one ({where})"
    elif not value.is_dir():
        message = f"{value} is a file, not a folder: give the inbox folder ({where})"
    elif not os.access(value, os.R_OK | os.W_OK | os.X_OK):
        message = f"the folder {value} cannot be read and written by this user: fix its permissions"
    else:
        return value
    raise click.BadParameter(message, ctx=ctx, param=param)


def _envvars(param: click.Parameter) -> list[str]:
    envvar = getattr(param, "envvar", None)
    if envvar is None:
        return []
    return [envvar] if isinstance(envvar, str) else list(envvar)


def not_empty(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A text option that may be left out but not given empty."""
    if value is not None and not value.strip():
        raise click.BadParameter("is empty: give a value, or leave it out", ctx=ctx, param=param)
    return value


def collect_from_here() -> None:
    """Let the garbage collector run again when :func:`main` held it during the start-up,
    leaving out of every later collection what was made until then: modules, classes and
    functions that live as long as the process. (Called in a process that did not start
    with :func:`main`, a test's, it changes nothing.)"""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def main() -> None:
    os.environ.setdefault("PYTHONIOENCODING", "utf-8")
    # The start-up imports (SQLAlchemy, psycopg, the models: ~0.4 s) make hundreds of
    # thousands of objects that live as long as the process; collecting among them is
    # wasted work (a full collection during the imports, ~35 ms of every command's
    # start, measured). The collector waits until they are made (collect_from_here).
    gc.disable()
    # The last exit handler (registered first, run last): the objects still alive are
    # frozen, so the interpreter's final garbage collection skips them and the operating
    # system takes the memory back at once (~0.1 s of every command, measured). Exit
    # handlers, open files and connections are closed as usual before it.
    atexit.register(gc.freeze)
    cli(prog_name="coles-loader")
