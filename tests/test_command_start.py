"""How ``coles-loader`` starts: a command loads its own module only, and the garbage
collector skips the start-up's objects (a command's start is part of every import)."""

from __future__ import annotations

import gc
import importlib
import subprocess
import sys
from typing import TYPE_CHECKING

from loaders.cli import COMMAND_MODULES, cli, collect_from_here

if TYPE_CHECKING:
    from pathlib import Path

from tests.helpers import run_loader


def python_prints(code: str) -> str:
    """What ``code`` prints, run by a fresh interpreter (nothing of this test's loaded)."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout


def test_every_command_is_found_in_the_module_the_group_names() -> None:
    for module in set(COMMAND_MODULES.values()):
        importlib.import_module(f"loaders.cli.{module}")
    assert sorted(cli.commands) == sorted(COMMAND_MODULES)


def test_help_lists_every_command(tmp_path: Path) -> None:
    result = run_loader(f"sqlite:///{tmp_path / 'x.db'}", "--help")
    listed = result.output.split("Commands:")[1].split()
    assert set(COMMAND_MODULES) <= set(listed)


def test_a_command_starts_without_the_other_commands_modules() -> None:
    code = (
        "import sys\n"
        "from loaders.cli import cli\n"
        "assert cli.get_command(None, 'update') is not None\n"
        "print(sorted(m for m in sys.modules if m.startswith('loaders.cli.')))\n"
    )
    assert python_prints(code).strip() == "['loaders.cli.update']"


def test_the_commands_are_loaded_by_name_when_the_process_did_not_load_them() -> None:
    code = (
        "import click\n"
        "from loaders.cli import cli\n"
        "context = click.Context(cli)\n"
        "print(len([n for n in cli.list_commands(context) if cli.get_command(context, n)]))\n"
    )
    assert int(python_prints(code)) == len(COMMAND_MODULES)


def test_the_collector_held_during_the_start_up_runs_again_without_its_objects() -> None:
    code = (
        "import gc\n"
        "gc.disable()\n"
        "from loaders.cli import collect_from_here\n"
        "collect_from_here()\n"
        "print(gc.isenabled(), gc.get_freeze_count() > 1000)\n"
    )
    assert python_prints(code).split() == ["True", "True"]


def test_a_process_that_did_not_hold_the_collector_is_left_as_it_was() -> None:
    frozen = gc.get_freeze_count()
    collect_from_here()
    assert gc.isenabled()
    assert gc.get_freeze_count() == frozen
