"""`coles-loader update --products`: whole files, quarantine, resume, concurrency, cycles."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import click
import pytest
from sqlalchemy import func, select

from colesbarcodes.db.models import CompanySku, ImportedFile, Product, Store, StorePrice
from loaders.cli import cli
from loaders.importer import ImportOptions
from loaders.line_count import LineTotal, total_lines
from tests.helpers import canonical_rows, dump, run_loader, write_jsonl

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from colesbarcodes.inbox.claims import Inbox

PROJECT = Path(__file__).resolve().parents[1]


def test_imports_every_line_shape_and_archives_the_files(
    engine: Engine, example_inbox: Inbox
) -> None:
    url = engine.url.render_as_string(hide_password=False)
    result = run_loader(
        url, "update", "--products", "--once", "--no-progress", "--inbox", str(example_inbox.root)
    )
    assert result.exit_code == 0, result.output
    assert "4 files" in result.output
    assert example_inbox.pending() == []
    assert len(list(example_inbox.archive.glob("*.jsonl"))) == 4
    with engine.connect() as conn:
        assert (
            conn.scalar(
                select(func.count())
                .select_from(CompanySku)
                .where(CompanySku.company == "woolworths")
            )
            == 36
        )
        # the real Woolworths listing rows, as they come: online prices, barcodes kept
        woolworths_prices = conn.execute(
            select(Store.store_id, func.count())
            .join(StorePrice, StorePrice.store_pk == Store.id)
            .where(Store.company == "woolworths")
            .group_by(Store.store_id)
        ).all()
        assert woolworths_prices == [("online", 36)]
        # raw Coles listing rows of two stores: 48 products each, the ad tile skipped
        coles = conn.scalar(
            select(func.count()).select_from(CompanySku).where(CompanySku.company == "coles")
        )
        assert coles == 48 + 1 + 1  # fruit & veg, the easter bunny, and the one canonical-only SKU
        rows_skipped = conn.scalar(select(func.sum(ImportedFile.rows_skipped)))
        assert rows_skipped == 2


def test_malformed_lines_are_quarantined_with_file_line_and_reason(
    engine: Engine, inbox: Inbox
) -> None:
    write_jsonl(
        inbox.root / "coles_store-0584_a.jsonl",
        [
            {"sku": 1, "name": "Good", "price": 1.0},
            '{"sku": 2, "name": ',
            {"name": "no sku"},
            {"sku": "x1"},
            {"sku": 3, "barcode": "9300633600083"},
            {"sku": 4, "name": "Also good"},
        ],
    )
    url = engine.url.render_as_string(hide_password=False)
    result = run_loader(
        url, "update", "--products", "--once", "--no-progress", "--inbox", str(inbox.root)
    )
    assert result.exit_code == 0, result.output
    quarantine = list(inbox.quarantine.glob("*.quarantine.jsonl"))
    assert len(quarantine) == 1
    records = [json.loads(line) for line in quarantine[0].read_text().splitlines()]
    assert [(r["file"], r["line"], r["imported"]) for r in records] == [
        ("coles_store-0584_a.jsonl", 2, False),
        ("coles_store-0584_a.jsonl", 3, False),
        ("coles_store-0584_a.jsonl", 4, False),
        ("coles_store-0584_a.jsonl", 5, True),
    ]
    assert records[0]["reason"].startswith("not valid JSON")
    assert records[1]["reason"] == "missing sku"
    assert "wrong check digit" in records[3]["reason"]
    with engine.connect() as conn:
        skus = sorted(conn.scalars(select(CompanySku.sku)).all())
    assert skus == ["1", "3", "4"]  # the rest of the file is imported


def test_huge_lines_are_quarantined_without_reading_them_whole(
    engine: Engine, inbox: Inbox
) -> None:
    huge = '{"sku": 9, "name": "' + "x" * (3 << 20) + '"}'
    write_jsonl(inbox.root / "store-0584.jsonl", [{"sku": 1}, huge, {"sku": 2}])
    url = engine.url.render_as_string(hide_password=False)
    result = run_loader(
        url, "update", "--products", "--once", "--no-progress", "--inbox", str(inbox.root)
    )
    assert result.exit_code == 0, result.output
    record = json.loads(next(inbox.quarantine.glob("*.jsonl")).read_text())
    assert record["line"] == 2
    assert "longer than" in record["reason"]
    assert record["raw"] is None
    with engine.connect() as conn:
        assert sorted(conn.scalars(select(CompanySku.sku))) == ["1", "2"]


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from colesbarcodes.db.engine import make_engine
    from colesbarcodes.inbox.claims import Inbox
    from loaders.importer import ImportOptions
    from loaders.update import LogProgress, run_cycle

    url, root, kill_after = sys.argv[1], sys.argv[2], int(sys.argv[3])

    class KillAfterBatches(LogProgress):
        batches = 0
        def advance(self, lines):
            self.batches += 1
            if self.batches == kill_after:
                os.kill(os.getpid(), signal.SIGKILL)  # a crash right after a commit

    run_cycle(make_engine(url), Inbox(root), ImportOptions(batch_size=50), KillAfterBatches())
    """
)


def _make_inbox(root: Path) -> None:
    root.mkdir(parents=True)
    rows_a: list[object] = list(canonical_rows("0584", range(1, 301)))
    rows_a.insert(120, "{broken")
    write_jsonl(root / "coles_a.jsonl", rows_a, mtime=1_700_000_000)
    rows_b = canonical_rows("0601", range(150, 451), barcode_every=3, price=2.0)
    rows_b[10]["barcode"] = canonical_rows("0584", range(2, 3))[0]["barcode"]
    write_jsonl(root / "coles_b.jsonl", rows_b, mtime=1_700_000_100)


@pytest.mark.parametrize("kill_after", [1, 4, 7])
def test_a_crash_between_batches_then_rerun_gives_the_identical_database(
    database_url: str, tmp_path: Path, kill_after: int, request: pytest.FixtureRequest
) -> None:
    from colesbarcodes.db.engine import make_engine, migrate

    if database_url.startswith("postgresql"):
        reference_url = database_url
    else:
        reference_url = f"sqlite:///{tmp_path / 'reference.sqlite3'}"
    # Uninterrupted reference run.
    _make_inbox(tmp_path / "ref")
    result = run_loader(
        reference_url,
        "update",
        "--products",
        "--once",
        "--no-progress",
        "--batch-size",
        "50",
        "--inbox",
        str(tmp_path / "ref"),
    )
    assert result.exit_code == 0, result.output
    reference_engine = make_engine(reference_url)
    expected = dump(reference_engine)
    reference_engine.dispose()
    if database_url.startswith("postgresql"):
        from tests.conftest import _truncate_postgres

        _truncate_postgres(database_url)
    else:
        database_url = f"sqlite:///{tmp_path / 'crashed.sqlite3'}"
    engine = make_engine(database_url)
    migrate(engine)
    # Crashed run, then a normal re-run.
    _make_inbox(tmp_path / "crash")
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, database_url, str(tmp_path / "crash"), str(kill_after)],
        cwd=PROJECT,
        capture_output=True,
        check=False,
    )
    assert proc.returncode == -9, proc.stderr.decode()
    assert list((tmp_path / "crash" / "processing").glob("*.jsonl")), (
        "the crash left a claimed file"
    )
    result = run_loader(
        database_url,
        "update",
        "--products",
        "--once",
        "--no-progress",
        "--batch-size",
        "50",
        "--inbox",
        str(tmp_path / "crash"),
    )
    assert result.exit_code == 0, result.output
    assert dump(engine) == expected
    assert not list((tmp_path / "crash").glob("*.jsonl"))
    assert not list((tmp_path / "crash" / "processing").glob("*.jsonl"))
    assert len(list((tmp_path / "crash" / "archive").glob("*.jsonl"))) == 2
    engine.dispose()


LOADER = [
    sys.executable,
    "-m",
    "loaders",
    "update",
    "--products",
    "--once",
    "--no-progress",
    "--batch-size",
    "40",
]


def test_two_loaders_at_once_never_process_a_file_twice(database_url: str, tmp_path: Path) -> None:
    root = tmp_path / "inbox"
    root.mkdir()
    for number in range(12):
        write_jsonl(
            root / f"coles_store-{number:04d}.jsonl", canonical_rows(f"{number:04d}", range(1, 121))
        )
    env = {**os.environ, "DATABASE_URL": database_url, "COLES_PRODUCT_INBOX": str(root)}
    from colesbarcodes.db.engine import make_engine, migrate

    engine = make_engine(database_url)
    migrate(engine)
    loaders = [
        subprocess.Popen(
            LOADER, cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0].decode() for p in loaders]
    assert [p.returncode for p in loaders] == [0, 0], outputs
    with engine.connect() as conn:
        files = conn.execute(select(ImportedFile.original_name, ImportedFile.status)).all()
        assert sorted(name for name, _ in files) == sorted(
            f"coles_store-{n:04d}.jsonl" for n in range(12)
        )
        assert {status for _, status in files} == {"done"}
        assert conn.scalar(select(func.count()).select_from(StorePrice)) == 12 * 120
        assert conn.scalar(select(func.count()).select_from(Product)) == 120
    assert len(list((root / "archive").glob("*.jsonl"))) == 12
    engine.dispose()


def test_cycles_repeat_until_the_inbox_is_empty_and_take_late_files(
    engine: Engine, inbox: Inbox
) -> None:
    from loaders.importer import ImportOptions
    from loaders.update import LogProgress, run_cycle

    write_jsonl(inbox.root / "first.jsonl", canonical_rows("0584", range(1, 5)))

    def drop_a_late_file(_report: object) -> None:
        if not (inbox.root / "late.jsonl").exists() and not list(inbox.archive.glob("*late.jsonl")):
            write_jsonl(inbox.root / "late.jsonl", canonical_rows("0584", range(5, 9)))

    first = run_cycle(engine, inbox, ImportOptions(), LogProgress(), on_file=drop_a_late_file)
    assert [f.name for f in first.files] == [
        "first.jsonl"
    ]  # the late file waits for the next cycle
    url = engine.url.render_as_string(hide_password=False)
    result = run_loader(
        url, "update", "--products", "--pause", "0", "--no-progress", "--inbox", str(inbox.root)
    )
    assert result.exit_code == 0, result.output
    assert inbox.pending() == []
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(CompanySku)) == 8


def test_an_unreachable_database_gives_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": "postgresql://postgres:s3cret@127.0.0.1:1/nowhere"}
    proc = subprocess.run(
        LOADER, cwd=PROJECT, env=env, capture_output=True, text=True, check=False, timeout=120
    )
    assert proc.returncode == 1
    assert (
        "Error: cannot use the database postgresql://postgres:***@127.0.0.1:1/nowhere: connection failed"
        in proc.stderr
    )
    assert "Traceback" not in proc.stderr
    assert "s3cret" not in proc.stderr + proc.stdout


def test_failed_cycles_stop_after_max_failures_with_a_message(
    engine: Engine, inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    import loaders.update

    def broken_cycle(*_args: object, **_kwargs: object) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(loaders.update, "run_cycle", broken_cycle)
    write_jsonl(inbox.root / "a.jsonl", [{"sku": 1}])
    url = engine.url.render_as_string(hide_password=False)
    result = run_loader(
        url,
        "update",
        "--products",
        "--pause",
        "0",
        "--max-failures",
        "3",
        "--no-progress",
        "--inbox",
        str(inbox.root),
    )
    assert result.exit_code == 1
    assert "stopping after 3 failed cycles in a row; last error: disk on fire" in result.output
    assert (inbox.root / "a.jsonl").exists()


def test_usage_errors_exit_2_with_a_message(tmp_path: Path) -> None:
    result = run_loader(f"sqlite:///{tmp_path / 'x.db'}", "update")
    assert result.exit_code == 2
    assert "pass --products" in result.output


def test_a_large_day_is_estimated_from_each_files_start_not_read_twice(tmp_path: Path) -> None:
    """The progress total of a day too large to count (counting reads every file once
    more before importing it): each file's first bytes scaled by its size, marked ~."""
    paths = []
    for number, width in enumerate([80, 200, 350]):
        path = tmp_path / f"store-{number}.jsonl"
        path.write_bytes(
            b"".join(
                b'{"sku": %d, "name": "%s"}\n' % (n, b"x" * (width + n % 7)) for n in range(900)
            )
        )
        paths.append(path)
    short = tmp_path / "short.jsonl"
    short.write_bytes(b'{"sku": 1}\n' * 5)  # shorter than the sample: counted exactly

    counted = total_lines([*paths, short])
    estimated = total_lines([*paths, short], exact_bytes=0, sample_bytes=16 << 10)

    assert counted == LineTotal(3 * 900 + 5, exact=True)
    assert not estimated.exact
    assert abs(estimated.lines - counted.lines) <= counted.lines * 0.02
    assert str(estimated).startswith("~") and str(counted) == "2705 lines"
    assert total_lines([tmp_path / "gone.jsonl"]) == LineTotal(0, exact=True)


def test_the_commands_batch_size_is_the_importers_default() -> None:
    update = cli.get_command(click.Context(cli), "update")
    assert update is not None
    option = next(p for p in update.params if p.name == "batch_size")
    assert option.default == ImportOptions().batch_size
