"""Crash consistency: the loader and the crawl, SIGKILLed at 20 random moments each and run
again, end in exactly the database (and inbox) of an uninterrupted run.

The moments are drawn from a seeded generator over the whole length of a run, so the kills
land before the first commit, inside a batch (mid-COPY, mid-merge), between batches, while
a quarantine file is written and while files are archived. Each trial prints what it hit;
``pytest -s`` shows the figures that docs/reliability.md quotes.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest
from stdnum import ean

from colesbarcodes.db.catalog import apply_lines
from colesbarcodes.db.engine import make_engine, migrate, session_factory
from colesbarcodes.inbox.lines import parse_object
from colesbarcodes.replica.catalogue import Catalogue
from colesbarcodes.replica.process import ReplicaProcess
from tests.helpers import (
    PROJECT,
    canonical_rows,
    crawl_command,
    crawl_env,
    dump,
    lookups,
    retry_file_skus,
    write_jsonl,
)

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.slow

TRIALS = 20
SEED = 20261124


# --- the loader ---------------------------------------------------------------------------

LOADER = [sys.executable, "-m", "loaders", "update", "--products", "--once", "--no-progress"]
LOADER += ["--batch-size", "25"]


def make_product_inbox(root: Path) -> int:
    """Three stores' files with bad lines, a shared barcode (a merge) and a clash (a
    conflict); returns the number of lines."""
    root.mkdir(parents=True)
    a: list[object] = [*canonical_rows("0584", range(1, 1201))]
    a[100:100] = ["{broken", '{"sku": null}']
    b: list[object] = [*canonical_rows("0601", range(600, 1801), barcode_every=3, price=2.0)]
    b[700:700] = ['{"sku": 5, "price": "free"}']
    c: list[object] = [*canonical_rows("0650", range(300, 900), barcode_every=5, price=3.0)]
    barcode_of_2 = f"93{2:010d}" + ean.calc_check_digit(f"93{2:010d}")
    c.append({"sku": 1, "store_id": "0650", "barcode": barcode_of_2})  # SKU 1 joins 2: a merge
    other = "930000000001" + ean.calc_check_digit("930000000001")
    c.append({"sku": 300, "store_id": "0650", "barcode": other})  # 300 has one: a conflict
    write_jsonl(root / "coles_a.jsonl", a, mtime=1_700_000_000)
    write_jsonl(root / "coles_b.jsonl", b, mtime=1_700_000_100)
    write_jsonl(root / "coles_c.jsonl", c, mtime=1_700_000_200)
    return len(a) + len(b) + len(c)


def import_inbox(database_url: str, root: Path) -> None:
    """The loader run to its end, in a process of its own, on the inbox ``root``."""
    proc = subprocess.run(
        [*LOADER, "--inbox", str(root)],
        cwd=PROJECT,
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _quarantine_records(root: Path) -> list[tuple[str, int, str]]:
    records = []
    for path in sorted((root / "quarantine").glob("*.jsonl")):
        for raw in path.read_text().splitlines():
            record = json.loads(raw)
            records.append((path.name.split("_", 1)[-1], record["line"], record["reason"]))
    return sorted(records)


def _fresh_database(database_url: str, tmp_path: Path, name: str) -> str:
    if database_url.startswith("postgresql"):
        from tests.conftest import _truncate_postgres

        _truncate_postgres(database_url)
        return database_url
    return f"sqlite:///{tmp_path / f'{name}.sqlite3'}"


def _start(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command, cwd=PROJECT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _kill_after(proc: subprocess.Popen[bytes], delay: float) -> bool:
    """SIGKILL ``proc`` after ``delay`` seconds; whether it was still running."""
    try:
        proc.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True


def _kill_at(command: list[str], env: dict[str, str], delay: float) -> bool:
    """Run ``command``, SIGKILL it after ``delay`` seconds; whether it was still running."""
    return _kill_after(_start(command, env), delay)


def _phase(root: Path) -> str:
    """What a killed loader left behind: which step it was in."""
    claimed = list((root / "processing").glob("*.jsonl"))
    archived = len(list((root / "archive").glob("*.jsonl")))
    if not claimed:
        if archived == 0:
            return "before claiming"
        return "post-processing" if archived == 3 else "between files"
    return f"in file {archived + 1}"


KILLER = textwrap.dedent(
    """
    import json, os, signal, sys, threading, time
    from colesbarcodes.db.engine import make_engine, migrate
    from colesbarcodes.inbox.claims import Inbox
    from loaders.importer import ImportOptions
    from loaders.update import LogProgress, run_cycle

    url, root, at_batch, delay = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])

    def kill_later():
        timer = threading.Timer(delay, os.kill, (os.getpid(), signal.SIGKILL))
        timer.daemon = True
        timer.start()

    class KillAfter(LogProgress):
        batches, closed = 0, 0.0
        def advance(self, lines):
            super().advance(lines)
            self.batches += 1
            if self.batches == at_batch:
                kill_later()
        def close(self):
            super().close()
            self.closed = time.monotonic()
            if at_batch == 0:  # after the last file: in post-processing
                kill_later()

    engine = make_engine(url)
    migrate(engine)
    progress = KillAfter(every=1e9)
    started = time.monotonic()
    run_cycle(engine, Inbox(root), ImportOptions(batch_size=25), progress)
    print(json.dumps({"batches": progress.batches, "import_s": progress.closed - started,
                      "post_s": time.monotonic() - progress.closed}))
    """
)


def _killer(url: str, root: Path, at_batch: int, delay: float) -> subprocess.CompletedProcess[str]:
    """The import of ``root``, SIGKILLed ``delay`` seconds after its batch ``at_batch``
    commits (0: after its last file, during post-processing; -1: never)."""
    return subprocess.run(
        [sys.executable, "-c", KILLER, url, str(root), str(at_batch), str(delay)],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_loader_killed_at_20_random_moments_ends_as_an_uninterrupted_run(
    database_url: str, tmp_path: Path
) -> None:
    url = _fresh_database(database_url, tmp_path, "reference")
    lines = make_product_inbox(tmp_path / "reference")
    reference = _killer(url, tmp_path / "reference", -1, 0.0)
    assert reference.returncode == 0, reference.stderr
    figures = json.loads(reference.stdout.splitlines()[-1])
    batch_s = figures["import_s"] / figures["batches"]
    engine = make_engine(url)
    expected = dump(engine)
    engine.dispose()
    expected_quarantine = _quarantine_records(tmp_path / "reference")
    # every line is imported or quarantined (none skipped silently)
    accounted = sum(imported + quarantined for *_, imported, quarantined in expected["files"])
    assert accounted == lines
    assert expected["merges"] and expected["conflicts"] and expected["quarantined"]

    # A moment a trial: a random batch's commit and a random part of the next batch's time;
    # every fifth trial, a random moment of the post-processing instead.
    rng = random.Random(SEED)
    hits: Counter[str] = Counter()
    for trial in range(TRIALS):
        url = _fresh_database(database_url, tmp_path, f"trial{trial}")
        engine = make_engine(url)
        migrate(engine)
        engine.dispose()
        root = tmp_path / f"trial{trial}"
        make_product_inbox(root)
        if trial % 5 == 4:
            at_batch, delay = 0, rng.uniform(0.0, figures["post_s"])
        else:
            at_batch, delay = rng.randint(1, figures["batches"]), rng.uniform(0.0, batch_s)
        killed = _killer(url, root, at_batch, delay).returncode == -signal.SIGKILL
        hits[_phase(root) if killed else "finished before the kill"] += 1
        import_inbox(url, root)
        engine = make_engine(url)
        try:
            assert dump(engine) == expected, f"trial {trial}: killed after batch {at_batch}"
        finally:
            engine.dispose()
        assert _quarantine_records(root) == expected_quarantine, f"trial {trial}"
        assert not list(root.glob("*.jsonl")) and not list((root / "processing").glob("*"))
        assert len(list((root / "archive").glob("*.jsonl"))) == 3
    print(
        f"\nloader, {TRIALS} kills over {figures['batches']} batches "
        f"({figures['import_s']:.2f}s) and post-processing ({figures['post_s']:.2f}s): "
        f"{dict(sorted(hits.items()))}"
    )
    assert sum(n for phase, n in hits.items() if phase.startswith("in file")) >= TRIALS // 2


# --- the crawl ----------------------------------------------------------------------------

SKUS = 160
CATALOGUE = list(Catalogue.generate(SKUS, seed=3))
FAILING = {CATALOGUE[7].sku, CATALOGUE[121].sku}  # always 503: they end in a retry file
# The site's answers; the other outcomes (prefilled, duplicate, recently checked) only
# record that a file's SKU needed no request.
# (A failed SKU has no answer: it goes to a retry file, which the next run takes.)
ANSWERS = {"found", "no_barcode", "not_found", "invalid_barcode"}
CRAWL_SETTINGS = ["-s", "CONCURRENT_REQUESTS=8", "-s", "COLES_UPSERT_BATCH_SIZE=10"]
# A re-run may take little more than the killed run's retry files, which fail again: its
# failed share says nothing of the site here.
CRAWL_SETTINGS += ["-s", "RETRY_TIMES=1", "-s", "COLES_MONITOR_MAX_FAILED_SHARE=1"]


def make_enrichment_inbox(root: Path) -> None:
    root.mkdir(parents=True)
    skus = [p.sku for p in CATALOGUE]
    write_jsonl(root / "a.jsonl", [{"sku": s} for s in skus[:90]], mtime=1_700_000_000)
    write_jsonl(root / "b.jsonl", [{"sku": s} for s in skus[60:]], mtime=1_700_000_100)


def know_some_barcodes(url: str) -> None:
    """A third of the SKUs' barcodes are known already: the crawl prefills them."""
    engine = make_engine(url)
    migrate(engine)
    rows = [
        {"sku": p.sku, "barcode": p.expected_gtin}
        for p in CATALOGUE[::3]
        if p.expected_gtin and p.status == "active"
    ]
    lines = [(n, parse_object(row)) for n, row in enumerate(rows, 1)]
    with session_factory(engine).begin() as session:
        apply_lines(session, [(n, line) for n, line in lines if line is not None], source="known")
    engine.dispose()


def _outcomes(url: str) -> dict[str, Any]:
    """Per SKU the site's answer (at most one: no SKU is asked for and stored twice), the
    products with their SKUs and barcodes, the conflicts."""
    engine = make_engine(url)
    try:
        stored = lookups(engine)
        state = dump(engine)
    finally:
        engine.dispose()
    answers: dict[str, list[tuple[str, str | None]]] = {}
    for sku, outcome, barcode in stored:
        if outcome in ANSWERS:
            answers.setdefault(sku, []).append((outcome, barcode))
    twice = {sku: rows for sku, rows in answers.items() if len(rows) > 1}
    assert not twice, f"SKUs answered and stored more than once: {twice}"
    assert {sku for sku, _, _ in stored} == {str(p.sku) for p in CATALOGUE}, "a SKU was lost"
    return {
        "answers": sorted((sku, *rows[0]) for sku, rows in answers.items()),
        "products": state["products"],
        "conflicts": state["conflicts"],
    }


@pytest.fixture
def slow_replica() -> Any:
    with ReplicaProcess(products=SKUS, seed=3) as site:
        # Retry-After 0: the failing SKUs' retries wait for nothing (the wait is
        # test_crawl's); the runs' length is the replica's delay and the work.
        site.configure(delay_ms=40, fail_skus=sorted(FAILING), retry_after_s=0)
        yield site


def test_the_crawl_killed_at_20_random_moments_ends_as_an_uninterrupted_run(
    database_url: str, tmp_path: Path, slow_replica: ReplicaProcess
) -> None:
    def command(root: Path) -> list[str]:
        return crawl_command(root, slow_replica.url, *CRAWL_SETTINGS)

    def env(url: str, name: str) -> dict[str, str]:
        return crawl_env(url, tmp_path / f"{name}.json")

    def complete(url: str, root: Path, name: str) -> None:
        proc = subprocess.run(
            command(root), cwd=PROJECT, env=env(url, name), capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr[-3000:]

    url = _fresh_database(database_url, tmp_path, "reference")
    know_some_barcodes(url)
    make_enrichment_inbox(tmp_path / "reference")
    started = time.monotonic()
    complete(url, tmp_path / "reference", "reference")
    length = time.monotonic() - started
    expected = _outcomes(url)
    assert len(expected["answers"]) > SKUS // 2
    assert retry_file_skus(tmp_path / "reference") == sorted(FAILING)

    rng = random.Random(SEED)
    killed_runs = 0
    extra_requests: list[int] = []
    for trial in range(TRIALS):
        url = _fresh_database(database_url, tmp_path, f"crawl{trial}")
        know_some_barcodes(url)
        root = tmp_path / f"crawl{trial}"
        make_enrichment_inbox(root)
        slow_replica.reset_stats()
        delay = rng.uniform(0.5, length)
        killed_runs += _kill_at(command(root), env(url, f"killed{trial}"), delay)
        complete(url, root, f"rerun{trial}")
        assert _outcomes(url) == expected, f"trial {trial}: killed after {delay:.2f}s"
        assert retry_file_skus(root) == sorted(FAILING), f"trial {trial}"
        assert not list((root / "processing").glob("*.jsonl")), f"trial {trial}"
        by_sku = slow_replica.stats()["by_sku"]
        extra_requests.append(
            sum(n - 1 for sku, n in by_sku.items() if n > 1 and int(sku) not in FAILING)
        )
    print(
        f"\ncrawl, {TRIALS} kills over {length:.1f}s runs: {killed_runs} killed mid-run; "
        f"SKUs asked again after a kill (answered, not yet committed): "
        f"max {max(extra_requests)}, mean {sum(extra_requests) / TRIALS:.1f}"
    )
    assert killed_runs >= TRIALS // 2
