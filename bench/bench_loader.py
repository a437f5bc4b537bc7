"""Benchmark: `coles-loader update --products` into PostgreSQL, against a raw COPY baseline.

What it measures
----------------
Four scenarios, each on freshly created throwaway PostgreSQL databases (one for the
loader, one for the baseline, both dropped at the end), each against a baseline of the
same rows measured in the same run: a plain ``COPY`` of the parsed lines into a staging
table plus one ``INSERT .. ON CONFLICT`` into a (store, SKU)-keyed table.

(a) first import: a day of files into an empty database;
(b) the same files again: every SKU known, no price changed;
(c) the next day: 5 % of the SKUs with a new price, 1 % new SKUs, 0.5 % gone;
(d) ``coles-loader update --products --inbox DIR --once`` as a subprocess on (a)'s files,
    timed from start to exit (interpreter start, migrations, import, post-processing);
    ``DATABASE_URL`` names its throwaway database;
(e) a rewrite day: the site reformatted its catalogue, every product's size is respelled
    (``500g`` becomes ``500 g``) and 5 % of the prices changed, on a database holding the
    day before: every product row changes once;
(f) names that differ per store: the same files as (a) but each SKU's name spelled
    differently at consecutive stores (``Product 7``, ``PRODUCT 7``, ``Product 7 Each``),
    into an empty database: every store's lines rename the products the previous store
    named (the rule keeps a later line's value).

``--file PATH`` measures a user's own file (or a folder of ``*.jsonl`` files) instead of
generated ones: (a) into an empty database and, if asked with ``--scenarios ab``, (b)
the same file again; the baseline COPYs the same rows.

For (b), (c) and (e) the day before is imported first (loader and baseline alike, untimed, with
post-processing), then both databases are vacuumed and analysed, as autovacuum would have
done by the next day. In (a)-(c) the loader runs ``run_cycle`` (claim, parse, validate,
merge rules, prices, history, ledger); its post-processing (reconciliation, product
groups) is timed apart and is not in the ratio. Every import runs in its own process, so
its peak memory (the child's max RSS) is its own. A ``CHECKPOINT`` before each timed step
keeps one step's dirty pages from slowing the next.

Two data shapes (``--shape``):

* ``bench``: a file per store (``coles_store-0584.jsonl``), 1,000,000 lines by default
  (~28,600 of 30,000 SKUs at each of 35 stores), SKUs as JSON numbers, half the SKUs with
  a barcode, ~1 % unreadable and ~3 % duplicated lines, ``scraped_at`` in UTC (``Z``);
* ``listing``: the shape users reported: one file, 30,000 Coles SKUs x 7 stores (210,000
  lines), one store after the other, every field present (``was_price``, ``unit_price``
  and ``url`` null), SKUs as JSON strings, half with a barcode, ``scraped_at`` per listing
  page of 48 products with a ``+11:00`` offset.

``--lines`` scales either shape (``bench``: more stores of ~28,600 lines; ``listing``:
more SKUs at 7 stores).

For each scenario it prints the lines/s of the loader and of the baseline (with each
one's CPU time: what the client process itself spent), their ratio, the loader's peak
memory, the rows of ``products`` the loader updated and the share of them that were HOT
(``pg_stat_user_tables``), and the PostgreSQL time per statement kind. That last needs
the ``pg_stat_statements`` extension, which works only when the server has it in
``shared_preload_libraries``; the bench checks and says "not available" otherwise (the
loader keeps no timers per statement of its own). COPY's time there includes the time the
server waited for the client's rows.

Goals: ratio >= 0.6 for every scenario (0.7 the aim beyond); peak memory < 500 MB.

``--scale``: a full day at real size instead: 850 store files x 29,000 lines (of 30,000
SKUs), about 25 M lines in the ``--shape``'s line format, ~6 GB of files and ~5 GB of
database (``--scale-files``, ``--scale-lines``, ``--scale-skus`` change the size). The
files are written line by line (memory stays flat) to a folder with room for them
(``--work-dir``, else the first of the temporary folders with enough free space; the
free space is printed) and deleted afterwards. They are imported once by the loader (no
baseline); the bench prints the import and post-processing times, lines/s, peak memory
and the database's size. Goal: the whole day in 6 minutes or less, peak memory < 500 MB.
A reduced run prints the linear extrapolation to the full size (optimistic: at full size
the tables' indexes outgrow memory).

Run it from the repository root::

    .venv/bin/python bench/bench_loader.py --shape bench      # (a)-(d), ~5 minutes
    .venv/bin/python bench/bench_loader.py --shape listing    # (a)-(d), ~1 minute
    .venv/bin/python bench/bench_loader.py --shape listing --scenarios ac --repeat 3
    .venv/bin/python bench/bench_loader.py --file ~/Downloads/coles_listing.jsonl
    .venv/bin/python bench/bench_loader.py --scale --scale-files 40     # a reduced day
    .venv/bin/python bench/bench_loader.py --scale                      # the full day

``--postgres-url`` names a database to connect to for creating and dropping the
throwaway ones (default ``postgresql://postgres@127.0.0.1:5432/postgres``); the role
must be allowed to create databases (and, for the checkpoints, be a superuser or hold
``pg_checkpoint``; without, they are skipped).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import urlsplit, urlunsplit

import orjson
import psycopg
from stdnum import ean

if TYPE_CHECKING:
    from collections.abc import Sequence

HERE = Path(__file__).resolve()

GOAL_RATIO = dict.fromkeys("abcdef", 0.6)
GOAL_PEAK_MB = 500.0
GOAL_SCALE_SECONDS = 360.0
SCENARIOS = {
    "a": "first import",
    "b": "the same files again",
    "c": "the next day",
    "d": "coles-loader update --once",
    "e": "a rewrite day (sizes, 5 % prices)",
    "f": "names that differ per store",
}
# the day each scenario times, and whether the day before is imported first
TIMED_DAY = {"a": "day1", "b": "day1", "c": "day2", "d": "day1", "e": "rewrite", "f": "names"}
DAY_BEFORE = {"b", "c", "e"}
FULL_SCALE = (850, 29_000)  # store files, lines per file: a real day
DB_BYTES_PER_LINE = 250  # the database's growth per imported line (measured: ~210)

# ---------------------------------------------------------------------------------------
# Data


@dataclass(slots=True)
class Item:
    """One SKU of the catalogue."""

    sku: int
    name: str
    brand: str
    size: str
    barcode: str | None
    price: float  # a store adds 0.1 x (its index % 3)
    order: float  # its place in the listing order (the same at every store)


@dataclass(frozen=True)
class Day:
    """A day's catalogue (in listing order), its date and the seed of its files;
    ``names_per_store``: each store spells a SKU's name its own way (of three)."""

    items: list[Item]
    date: date
    seed: int
    names_per_store: bool = False


# how consecutive stores spell a product's name when names differ per store
NAME_SPELLINGS = (str, str.upper, lambda name: name + " Each")


def _barcode(rng: random.Random) -> str:
    body = f"93{rng.randrange(10**10):010d}"
    return body + ean.calc_check_digit(body)


def _item(index: int, rng: random.Random) -> Item:
    sku = 1_000_000 + index * 7
    return Item(
        sku=sku,
        name=f"Product {index}",
        brand=f"Brand {index % 500}",
        size=f"{rng.choice([100, 250, 500, 1000])}g",
        barcode=_barcode(rng) if index % 2 == 0 else None,
        price=round(1 + (sku % 997) / 10, 2),
        order=rng.random(),
    )


def make_catalogue(skus: int, seed: int = 1) -> list[Item]:
    rng = random.Random(seed)
    return sorted((_item(index, rng) for index in range(skus)), key=lambda i: i.order)


def next_day(
    items: list[Item], seed: int, *, changes: float = 0.05, new: float = 0.01, gone: float = 0.005
) -> list[Item]:
    """The catalogue a day later: ``changes`` of the SKUs with a new price, ``new`` more
    SKUs (placed anywhere in the listing order), ``gone`` of them no longer listed."""
    rng = random.Random(seed)
    kept: list[Item] = []
    for item in items:
        roll = rng.random()
        if roll < gone:
            continue
        if roll < gone + changes:
            item = replace(item, price=round(max(0.5, item.price * 0.8), 2))
        kept.append(item)
    first_new = (max(i.sku for i in items) - 1_000_000) // 7 + 1
    kept += [_item(first_new + n, rng) for n in range(round(len(items) * new))]
    return sorted(kept, key=lambda i: i.order)


def rewrite_day(items: list[Item], seed: int) -> list[Item]:
    """The catalogue after the site reformatted it: every size respelled (``500g`` as
    ``500 g``), 5 % of the SKUs with a new price, none new or gone."""
    day = next_day(items, seed, new=0.0, gone=0.0)
    return [replace(item, size=item.size.replace("g", " g")) for item in day]


def store_id(index: int) -> str:
    return f"{584 + index:04d}"


def _listed(sku: int, store_index: int, coverage: float) -> bool:
    """Whether a store lists a SKU: a fixed pseudo-random choice of ``coverage`` of them."""
    if coverage >= 1.0:
        return True
    mixed = (sku * 0x9E3779B1 + (store_index + 1) * 0x85EBCA6B) & 0xFFFFFFFF
    mixed = ((mixed ^ (mixed >> 15)) * 0x2C1B3C6D) & 0xFFFFFFFF
    return mixed / 2**32 < coverage


LISTING_TZ = timezone(timedelta(hours=11))
PAGE = 48  # products per listing page; a page's lines share their scraped_at


class LineWriter:
    """Writes a day's lines of one shape, store by store."""

    def __init__(self, shape: str, day: Day) -> None:
        self.shape = shape
        self.day = day
        self.rng = random.Random(day.seed)
        self.start = datetime(day.date.year, day.date.month, day.date.day, 6, tzinfo=LISTING_TZ)
        self.fixed_time = f"{day.date.isoformat()}T06:00:00Z"

    def write_store(self, out: BinaryIO, store_index: int, coverage: float, page: int) -> int:
        """The store's listed SKUs, in listing order; ``page`` is the number of listing
        pages written to the file before (the clock of ``scraped_at``). Returns the
        lines written."""
        store, rng, written = store_id(store_index), self.rng, 0
        listing = self.shape == "listing"
        spell = NAME_SPELLINGS[store_index % 3] if self.day.names_per_store else str
        second, stamp = -1, ""
        for n, item in enumerate(
            i for i in self.day.items if _listed(i.sku, store_index, coverage)
        ):
            price = round(item.price + 0.1 * (store_index % 3), 2)
            if listing:
                if page + n // PAGE != second:
                    second = page + n // PAGE
                    stamp = (self.start + timedelta(seconds=second)).isoformat()
                row: dict[str, Any] = {
                    "company": "coles",
                    "store_id": store,
                    "sku": str(item.sku),
                    "name": spell(item.name),
                    "brand": item.brand,
                    "size": item.size,
                    "price": price,
                    "was_price": None,
                    "unit_price": None,
                    "barcode": item.barcode,
                    "url": None,
                    "scraped_at": stamp,
                    "available": True,
                }
                out.write(orjson.dumps(row) + b"\n")
                written += 1
                continue
            roll = rng.random()
            if roll < 0.01:  # an unreadable line
                out.write(b'{"sku": ' + str(item.sku).encode() + b', "name": "broken\n')
                written += 1
                continue
            row = {
                "store_id": store,
                "sku": item.sku,
                "name": spell(item.name),
                "brand": item.brand,
                "size": item.size,
                "price": price,
                "was_price": None,
                "unit_price": round(price / 4, 2),
                "barcode": item.barcode if item.barcode and rng.random() < 0.9 else None,
                "url": f"https://www.coles.com.au/product/p-{item.sku}",
                "scraped_at": self.fixed_time,
            }
            data = orjson.dumps(row) + b"\n"
            out.write(data)
            written += 1
            if roll > 0.97:  # a duplicated line
                out.write(data)
                written += 1
        return written


@dataclass
class Files:
    """Generated inbox files."""

    root: Path
    lines: int = 0
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0

    def describe(self) -> str:
        made = f", generated in {self.seconds:.1f}s" if self.seconds else ""
        return f"{self.lines:,} lines in {self.files} files ({self.bytes / 1e6:,.0f} MB{made})"


def write_day(root: Path, shape: str, day: Day, stores: int, coverage: float) -> Files:
    """``bench``: a file per store; ``listing``: one file, one store after the other.
    Each store lists ``coverage`` of the SKUs (the same ones every day)."""
    started = time.perf_counter()
    root.mkdir(parents=True, exist_ok=True)
    result = Files(root)
    writer = LineWriter(shape, day)
    if shape == "listing":
        path = root / f"coles_listing_{day.date.isoformat()}.jsonl"
        with path.open("wb") as out:
            for index in range(stores):
                pages = math.ceil(result.lines / PAGE)
                result.lines += writer.write_store(out, index, coverage, pages)
        result.files = 1
    else:
        for index in range(stores):
            with (root / f"coles_store-{store_id(index)}.jsonl").open("wb") as out:
                result.lines += writer.write_store(out, index, coverage, 0)
            result.files += 1
    result.bytes = sum(p.stat().st_size for p in root.glob("*.jsonl"))
    result.seconds = time.perf_counter() - started
    return result


def write_scale(root: Path, shape: str, day: Day, files: int, lines: int) -> Files:
    """A file per store, ``lines`` lines each (of the shape's line format), written one
    line at a time."""
    started = time.perf_counter()
    root.mkdir(parents=True, exist_ok=True)
    result = Files(root)
    coverage = min(1.0, lines / len(day.items))
    writer = LineWriter(shape, day)
    for index in range(files):
        path = root / f"coles_store-{store_id(index)}_{day.date.isoformat()}.jsonl"
        with path.open("wb") as out:
            result.lines += writer.write_store(out, index, coverage, 0)
        result.files += 1
        result.bytes += path.stat().st_size
        if (index + 1) % 100 == 0:
            print(f"  {index + 1}/{files} files, {result.bytes / 1e9:.1f} GB", flush=True)
    result.seconds = time.perf_counter() - started
    return result


def bytes_per_line(shape: str, day: Day) -> float:
    """The average size of a line of the shape, from a sample."""
    sample = Day(day.items[:2000], day.date, day.seed)
    out = io.BytesIO()
    lines = LineWriter(shape, sample).write_store(out, 0, 1.0, 0)
    return out.tell() / max(lines, 1)


def link_inbox(source: Files, target: Path) -> Path:
    """A fresh inbox holding the files (hard links where possible: the loader moves
    them into its processing/ and archive/ folders, and the source stays)."""
    target.mkdir(parents=True)
    for path in sorted(source.root.glob("*.jsonl"), key=lambda p: p.stat().st_mtime_ns):
        try:
            os.link(path, target / path.name)
        except OSError:
            shutil.copy2(path, target / path.name)
    return target


def pick_work_dir(needed: int, preferred: Path | None) -> Path:
    """A folder with ``needed`` bytes free (and 1 GB to spare)."""
    # Only parents for mkdtemp (TemporaryDirectory), so a shared folder is safe.
    shared = [Path(tempfile.gettempdir()), Path("/var/tmp")]  # noqa: S108
    candidates = [preferred] if preferred else shared
    for folder in candidates:
        if folder.is_dir():
            free = shutil.disk_usage(folder).free
            print(f"  {folder}: {free / 1e9:,.1f} GB free, {needed / 1e9:,.1f} GB needed")
            if free >= needed + 1_000_000_000:
                return folder
    raise SystemExit(f"no room for {needed / 1e9:.1f} GB of files: pass --work-dir")


# ---------------------------------------------------------------------------------------
# PostgreSQL: throwaway databases, statement statistics


def database_url(admin_url: str, name: str) -> str:
    parts = urlsplit(admin_url)
    return urlunsplit(parts._replace(path="/" + name))


class Server:
    """The PostgreSQL server the throwaway databases are made on."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.prefix = f"bench_loader_{uuid.uuid4().hex[:8]}"
        self.created: list[str] = []
        self.can_checkpoint = True
        self.statements, self.statements_why = self._statements_support()

    def _admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.admin_url, autocommit=True)

    def _statements_support(self) -> tuple[bool, str]:
        with self._admin() as admin:
            preload = admin.execute("SHOW shared_preload_libraries").fetchone()
            libraries = [
                p.strip().strip('"') for p in str(preload[0] if preload else "").split(",")
            ]
            if "pg_stat_statements" not in libraries:
                return False, "pg_stat_statements is not in shared_preload_libraries"
            track = admin.execute(
                "SELECT current_setting('pg_stat_statements.track', true)"
            ).fetchone()
            if track and track[0] == "none":
                return False, "pg_stat_statements.track is none"
        return True, ""

    def create(self, label: str) -> str:
        """A new empty database; returns its URL."""
        name = f"{self.prefix}_{label}"
        with self._admin() as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        url = database_url(self.admin_url, name)
        if self.statements:
            try:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            except psycopg.Error as exc:
                self.statements = False
                self.statements_why = f"CREATE EXTENSION pg_stat_statements failed: {exc}"
        return url

    def drop_all(self) -> None:
        with self._admin() as admin:
            for name in self.created:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.created.clear()

    def checkpoint(self) -> None:
        if not self.can_checkpoint:
            return
        try:
            with self._admin() as admin:
                admin.execute("CHECKPOINT")
        except psycopg.errors.InsufficientPrivilege:
            self.can_checkpoint = False
            print("  (no CHECKPOINT between steps: the role may not run it)")

    @staticmethod
    def vacuum_analyze(url: str) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM (ANALYZE)")

    @staticmethod
    def size(url: str) -> int:
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
            return int(row[0]) if row else 0

    def data_directory_free(self) -> int | None:
        """Free bytes where the server keeps its data, if it is on this machine."""
        try:
            with self._admin() as admin:
                row = admin.execute("SHOW data_directory").fetchone()
        except psycopg.Error:
            return None
        path = Path(str(row[0])) if row else None
        if path is None or not path.exists():
            return None
        return shutil.disk_usage(path).free


Snapshot = dict[int, tuple[str, int, float]]  # queryid -> (query, calls, total ms)
# Statement kind -> (calls, ms), as lists for JSON
Kinds = dict[str, list[float]]


def snapshot(url: str) -> Snapshot:
    """pg_stat_statements' counters for the database (not counting this query)."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT queryid, min(query), sum(calls)::bigint, sum(total_exec_time) "
            "FROM pg_stat_statements "
            "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND queryid IS NOT NULL AND query NOT LIKE '%pg_stat_statements%' "
            "GROUP BY queryid"
        ).fetchall()
    return {int(q): (str(text), int(calls), float(ms)) for q, text, calls, ms in rows}


_KINDS: list[tuple[str, re.Pattern[str]]] = [
    ("look-up: SKUs, products, stored prices", re.compile(r"from unnest.*company_skus")),
    ("look-up: barcodes", re.compile(r"from unnest.*from products where barcode")),
    ("reserve ids (nextval)", re.compile(r"nextval\(pg_get_serial_sequence")),
    ("upsert {0}", re.compile(r"^insert into (\w+).* on conflict")),
    ("COPY {0}", re.compile(r"^copy (\w+)")),
    ("INSERT {0}", re.compile(r"^insert into (\w+)")),
    ("UPDATE {0}", re.compile(r"^update (\w+)")),
    ("DELETE {0}", re.compile(r"^delete from (\w+)")),
    ("CREATE {0}", re.compile(r"^create (?:temporary |temp |unlogged |unique )?(\w+)")),
    ("{0}", re.compile(r"^(begin|commit|rollback|savepoint|release|set|show|alter|drop)\b")),
    ("SELECT .. FROM {0} (cursor)", re.compile(r"^declare .*? cursor for select .*? from (\w+)")),
    ("SELECT .. FROM {0}", re.compile(r"^(?:with .*?\)\s*)?select .*? from (\w+)")),
    ("SELECT {0}()", re.compile(r"^select (\w+)\(")),
]


def statement_kind(query: str) -> str:
    """A statement's kind: its command and table, or a name for the loader's look-ups."""
    text = " ".join(query.split()).lower()
    for label, pattern in _KINDS:
        match = pattern.search(text)
        if match:
            words = match.groups()
            if label == "{0}" or label.startswith("CREATE"):
                words = tuple(w.upper() for w in words)
            return label.format(*words)
    return "other: " + text[:40]


def kinds_between(before: Snapshot, after: Snapshot) -> Kinds:
    kinds: Kinds = {}
    for queryid, (query, calls, ms) in after.items():
        old_calls, old_ms = before.get(queryid, ("", 0, 0.0))[1:]
        if calls > old_calls:
            entry = kinds.setdefault(statement_kind(query), [0, 0.0])
            entry[0] += calls - old_calls
            entry[1] += ms - old_ms
    return kinds


# ---------------------------------------------------------------------------------------
# The timed steps, each in a child process


@dataclass
class Step:
    """A timed step's results (from its child process)."""

    lines: int
    seconds: float
    peak_mb: float
    cpu_seconds: float  # the process's CPU time (user + system) in the step
    post_seconds: float | None = None
    statements: Kinds | None = None
    post_statements: Kinds | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.lines / self.seconds if self.seconds else 0.0


@dataclass
class Finished:
    seconds: float
    peak_mb: float
    cpu_seconds: float
    stdout: str
    stderr: str


def run_process(argv: Sequence[str], logs: Path, env: dict[str, str] | None = None) -> Finished:
    """Run a process to its end; its wall time and its own peak memory (``wait4``)."""
    logs.mkdir(parents=True, exist_ok=True)
    name = f"{len(list(logs.iterdir())) // 2:02d}"
    out_path, err_path = logs / f"{name}.out", logs / f"{name}.err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(list(argv), stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    stdout, stderr = out_path.read_text(), err_path.read_text()
    if proc.returncode != 0:
        tail = "\n".join(stderr.strip().splitlines()[-20:])
        raise RuntimeError(f"{' '.join(argv[:4])} .. exited with {proc.returncode}:\n{tail}")
    cpu = usage.ru_utime + usage.ru_stime
    return Finished(seconds, usage.ru_maxrss / 1024, cpu, stdout, stderr)


def run_child(
    mode: str, inbox: Path, url: str, args: argparse.Namespace, logs: Path, stats: bool
) -> Step:
    argv = [sys.executable, str(HERE), f"--child={mode}", "--inbox", str(inbox), "--url", url]
    argv += ["--batch-size", str(args.batch_size)] + (["--statements"] if stats else [])
    done = run_process(argv, logs)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return Step(
        lines=result.pop("lines"),
        seconds=result.pop("seconds"),
        peak_mb=done.peak_mb,
        cpu_seconds=result.pop("cpu_seconds"),
        post_seconds=result.pop("post_seconds", None),
        statements=result.pop("statements", None),
        post_statements=result.pop("post_statements", None),
        extra=result,
    )


def run_command(
    inbox: Path, lines: int, url: str, args: argparse.Namespace, logs: Path, server: Server
) -> Step:
    """(d): the command as users run it, timed from start to exit."""
    script = Path(sys.executable).with_name("coles-loader")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "loaders"]
    command += ["update", "--products", "--inbox", str(inbox), "--once"]
    command += ["--batch-size", str(args.batch_size)]
    env = {**os.environ, "DATABASE_URL": url}
    before = snapshot(url) if server.statements else None
    done = run_process(command, logs, env)
    kinds = kinds_between(before, snapshot(url)) if before is not None else None
    summary = [line for line in done.stdout.splitlines() if "lines/s" in line]
    return Step(
        lines,
        done.seconds,
        done.peak_mb,
        done.cpu_seconds,
        statements=kinds,
        extra={"summary": summary[:1]},
    )


def child_baseline(inbox: Path, url: str, statements: bool) -> dict[str, Any]:
    """Raw COPY of the same rows into a staging table plus one INSERT .. ON CONFLICT."""
    before = snapshot(url) if statements else None
    started, cpu = time.perf_counter(), time.process_time()
    lines = 0
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.execute(BASELINE_SQL)
        with cur.copy("COPY bench_stage FROM STDIN") as copy:
            for path in sorted(inbox.glob("*.jsonl")):
                with path.open("rb") as handle:
                    for raw in handle:
                        lines += 1
                        try:
                            r = orjson.loads(raw)
                        except orjson.JSONDecodeError:
                            continue
                        if not isinstance(r, dict) or r.get("sku") is None:
                            continue
                        copy.write_row(
                            (
                                r.get("store_id") or "",  # a key column
                                str(r["sku"]),
                                r.get("name"),
                                r.get("brand"),
                                r.get("size"),
                                r.get("price"),
                                r.get("was_price"),
                                r.get("unit_price"),
                                r.get("barcode"),
                                r.get("url"),
                                r.get("scraped_at"),
                            )
                        )
        cur.execute(
            "INSERT INTO bench_prices SELECT DISTINCT ON (store_id, sku) * FROM bench_stage "
            "ORDER BY store_id, sku ON CONFLICT (store_id, sku) "
            "DO UPDATE SET price = excluded.price, last_seen = excluded.last_seen"
        )
        conn.commit()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    result: dict[str, Any] = {"lines": lines, "seconds": seconds, "cpu_seconds": cpu}
    if before is not None:
        result["statements"] = kinds_between(before, snapshot(url))
    return result


BASELINE_SQL = """
CREATE UNLOGGED TABLE IF NOT EXISTS bench_prices (
    store_id text, sku text, name text, brand text, size text, price numeric(12,3),
    was_price numeric(12,3), unit_price numeric(12,3), barcode text, url text,
    last_seen timestamptz, PRIMARY KEY (store_id, sku));
CREATE TEMP TABLE bench_stage (
    store_id text, sku text, name text, brand text, size text, price numeric(12,3),
    was_price numeric(12,3), unit_price numeric(12,3), barcode text, url text,
    last_seen timestamptz);
"""


def product_updates(url: str) -> tuple[int, int]:
    """``products``' updated rows so far, and how many of them were HOT (written on the
    same page, no index entries): pg_stat_user_tables."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(n_tup_upd), 0), coalesce(sum(n_tup_hot_upd), 0) "
            "FROM pg_stat_user_tables WHERE relname = 'products'"
        ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def child_loader(inbox: Path, url: str, batch_size: int, statements: bool) -> dict[str, Any]:
    """The real import (``run_cycle``), then post-processing, each timed."""
    from colesbarcodes.db.engine import make_engine, migrate
    from colesbarcodes.inbox.claims import Inbox
    from loaders.importer import ImportOptions
    from loaders.update import LogProgress, post_process, run_cycle

    engine = make_engine(url)
    migrate(engine)
    updates_before = product_updates(url)
    before = snapshot(url) if statements else None
    started, cpu = time.perf_counter(), time.process_time()
    done_at: list[float] = []  # when each file was done (files share batches: not its own time)
    report = run_cycle(
        engine,
        Inbox(inbox),
        ImportOptions(batch_size=batch_size),
        LogProgress(every=1e9),
        post=False,
        on_file=lambda _: done_at.append(time.perf_counter() - started),
    )
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    engine.dispose()  # its sessions end: their table statistics reach the server's
    time.sleep(1.0)
    updates = [n - b for n, b in zip(product_updates(url), updates_before, strict=True)]
    imported = snapshot(url) if statements else None
    post_started = time.perf_counter()
    post_process(engine)
    post_seconds = time.perf_counter() - post_started
    stats = report.stats()
    result: dict[str, Any] = {
        "lines": report.lines,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "post_seconds": post_seconds,
        "quarantined": report.quarantined,
        "products_created": stats.products_created,
        "skus_created": stats.skus_created,
        "price_changes": stats.price_changes,
        "product_updates": updates[0],
        "product_updates_hot": updates[1],
        "files_done": [(f.lines, at) for f, at in zip(report.files, done_at, strict=True)],
    }
    if before is not None and imported is not None:
        result["statements"] = kinds_between(before, imported)
        result["post_statements"] = kinds_between(imported, snapshot(url))
    engine.dispose()
    return result


# ---------------------------------------------------------------------------------------
# Scenarios


@dataclass
class Outcome:
    key: str
    baseline: Step
    loader: Step

    @property
    def ratio(self) -> float:
        return self.loader.rate / self.baseline.rate if self.baseline.rate else 0.0


def _goal(met: bool) -> str:
    return "met" if met else "MISSED"


def _peak_goal(step: Step) -> str:
    return _goal(step.peak_mb < GOAL_PEAK_MB)


def _ratio_met(ratio: float, goal: float) -> bool:
    """Judged as printed (two decimals): 0.496 shows as 0.50 and meets 0.5."""
    return round(ratio, 2) >= goal


def print_statements(title: str, kinds: Kinds | None, wall: float, server: Server) -> None:
    if kinds is None:
        print(f"    PostgreSQL time per statement kind ({title}): not available (see above)")
        return
    total = sum(ms for _, ms in kinds.values())
    statements = int(sum(c for c, _ in kinds.values()))
    print(
        f"    PostgreSQL time per statement kind ({title}): {total / 1000:.2f}s in "
        f"{statements:,} statements ({total / 10 / wall:.0f} % of the wall time)"
    )
    ranked = sorted(kinds.items(), key=lambda kv: -kv[1][1])
    for kind, (calls, ms) in ranked[:10]:
        print(f"      {ms / 1000:>8.2f}s {int(calls):>7,} x  {kind}")
    rest = ranked[10:]
    if rest:
        rest_ms = sum(v[1] for _, v in rest)
        print(f"      {rest_ms / 1000:>8.2f}s          {len(rest)} other kinds")


def print_outcome(outcome: Outcome, server: Server) -> None:
    base, load = outcome.baseline, outcome.loader
    goal = GOAL_RATIO[outcome.key]
    print(
        f"    baseline (COPY + one INSERT .. ON CONFLICT): {base.rate:>9,.0f} lines/s "
        f"({base.lines:,} lines in {base.seconds:.2f}s, CPU {base.cpu_seconds:.2f}s, "
        f"peak {base.peak_mb:.0f} MB)"
    )
    what = (
        "coles-loader command (start to exit)"
        if outcome.key == "d"
        else "loader import (run_cycle)"
    )
    post = (
        f"; post-processing {load.post_seconds:.2f}s apart" if load.post_seconds is not None else ""
    )
    print(
        f"    {what + ':':<44} {load.rate:>9,.0f} lines/s "
        f"({load.lines:,} lines in {load.seconds:.2f}s, CPU {load.cpu_seconds:.2f}s, "
        f"peak {load.peak_mb:.0f} MB{post})"
    )
    ratio_goal = _goal(_ratio_met(outcome.ratio, goal))
    print(
        f"    ratio loader/baseline {outcome.ratio:.2f} (goal >= {goal}: {ratio_goal}), "
        f"peak memory {load.peak_mb:.0f} MB (goal < {GOAL_PEAK_MB:.0f}: {_peak_goal(load)})"
    )
    facts = ", ".join(
        f"{k.replace('_', ' ')} {v:,}" for k, v in load.extra.items() if isinstance(v, int)
    )
    if facts:
        print(f"    loader: {facts}")
    updated = load.extra.get("product_updates")
    if updated:
        hot = load.extra.get("product_updates_hot", 0)
        print(f"    products: {updated:,} rows updated, {100 * hot / updated:.0f} % of them HOT")
    for line in load.extra.get("summary", []):
        print(f"    command said: {line}")
    print_statements(
        "loader" if outcome.key == "d" else "loader, import", load.statements, load.seconds, server
    )
    if load.post_statements is not None and load.post_seconds:
        print_statements("loader, post-processing", load.post_statements, load.post_seconds, server)
    if base.statements is not None:
        print_statements("baseline", base.statements, base.seconds, server)


def run_scenario(
    key: str, days: dict[str, Files], work: Path, args: argparse.Namespace, server: Server
) -> Outcome:
    """One scenario on new databases: the untimed day before (b, c), then the timed step."""
    tag = f"{key}{uuid.uuid4().hex[:4]}"
    logs = work / "logs" / tag
    base_url, load_url = server.create(f"{tag}_baseline"), server.create(f"{tag}_loader")
    try:
        timed = days[TIMED_DAY[key]]
        if key in DAY_BEFORE:
            run_child("baseline", days["day1"].root, base_url, args, logs, False)
            run_child(
                "loader",
                link_inbox(days["day1"], work / tag / "setup"),
                load_url,
                args,
                logs,
                False,
            )
            server.vacuum_analyze(base_url)
            server.vacuum_analyze(load_url)
        server.checkpoint()
        baseline = run_child("baseline", timed.root, base_url, args, logs, server.statements)
        server.checkpoint()
        inbox = link_inbox(timed, work / tag / "inbox")
        if key == "d":
            loader = run_command(inbox, timed.lines, load_url, args, logs, server)
        else:
            loader = run_child("loader", inbox, load_url, args, logs, server.statements)
    finally:
        shutil.rmtree(work / tag, ignore_errors=True)
        server.drop_all()
    return Outcome(key, baseline, loader)


def shape_sizes(args: argparse.Namespace) -> tuple[int, int, int]:
    """Lines, stores and SKUs of a day (see the module docstring)."""
    if args.shape == "listing":
        lines = args.lines or 210_000
        stores = args.stores or 7
        skus = args.skus or max(1, lines // stores)
    else:
        lines = args.lines or 1_000_000
        stores = args.stores or max(1, round(lines / 28_571))
        skus = args.skus or 30_000
    return lines, stores, skus


def run_scenarios(args: argparse.Namespace, server: Server) -> None:
    lines, stores, skus = shape_sizes(args)
    day1 = Day(make_catalogue(skus), date(2026, 11, 23), seed=11)
    day2 = Day(next_day(day1.items, seed=12), date(2026, 11, 24), seed=12)
    # the share of the SKUs each store lists: all of them in a listing file
    coverage = 1.0 if args.shape == "listing" else min(1.0, lines / stores / skus)
    print(
        f"shape {args.shape}: {lines:,} lines, {skus:,} SKUs x {stores} stores; "
        f"batch size {args.batch_size:,}"
    )
    # two days of files; the inboxes hold hard links to them
    work_root = pick_work_dir(int(bytes_per_line(args.shape, day1) * lines * 2.1), args.work_dir)
    others = {
        "day2": day2,
        "rewrite": Day(rewrite_day(day1.items, seed=13), date(2026, 11, 24), seed=13),
        "names": replace(day1, names_per_store=True),
    }
    titles = {"day2": "day 2", "rewrite": "a rewrite day", "names": "names per store"}
    with tempfile.TemporaryDirectory(prefix="bench_loader_", dir=work_root) as tmp:
        work = Path(tmp)
        days = {"day1": write_day(work / "day1", args.shape, day1, stores, coverage)}
        print(f"day 1: {days['day1'].describe()}")
        for name in sorted({TIMED_DAY[key] for key in args.scenarios} - {"day1"}):
            days[name] = write_day(work / name, args.shape, others[name], stores, coverage)
            print(f"{titles[name]}: {days[name].describe()}")
        repeat_scenarios(args, server, days, work, f"shape {args.shape}")


def repeat_scenarios(
    args: argparse.Namespace, server: Server, days: dict[str, Files], work: Path, what: str
) -> None:
    outcomes: dict[str, list[Outcome]] = {}
    for run in range(args.repeat):
        for key in args.scenarios:
            label = f" (run {run + 1}/{args.repeat})" if args.repeat > 1 else ""
            print(f"\n({key}) {SCENARIOS[key]}, {what}{label}", flush=True)
            outcome = run_scenario(key, days, work, args, server)
            outcomes.setdefault(key, []).append(outcome)
            print_outcome(outcome, server)
    print_summary(args, outcomes, what)


def run_file(args: argparse.Namespace, server: Server) -> None:
    """(a), and (b) if asked, on a user's file or folder of files."""
    from loaders.line_count import count_lines

    source: Path = args.file
    paths = sorted(source.glob("*.jsonl")) if source.is_dir() else [source]
    if not paths or not all(p.is_file() for p in paths):
        raise SystemExit(f"--file {source}: no such file (or no *.jsonl files in the folder)")
    size = sum(p.stat().st_size for p in paths)
    work_root = pick_work_dir(size + 1, args.work_dir)
    with tempfile.TemporaryDirectory(prefix="bench_loader_file_", dir=work_root) as tmp:
        work = Path(tmp)
        root = work / "file"
        root.mkdir()
        lines = 0
        for path in paths:
            name = path.name if path.suffix == ".jsonl" else path.name + ".jsonl"
            try:
                os.link(path, root / name)
            except OSError:
                shutil.copy2(path, root / name)
            lines += count_lines(path)[0]
        files = Files(root, lines=lines, files=len(paths), bytes=size)
        print(f"--file {source}: {files.describe()}")
        repeat_scenarios(args, server, {"day1": files}, work, f"file {source.name}")


def print_summary(args: argparse.Namespace, outcomes: dict[str, list[Outcome]], what: str) -> None:
    runs_said = f"{args.repeat} runs, medians" if args.repeat > 1 else "1 run"
    print(f"\nsummary, {what} ({runs_said}):")
    print(
        f"  {'scenario':<40}{'loader l/s':>11}{'baseline l/s':>14}{'ratio':>7}  {'goal':<14}"
        f"{'peak MB':>8}  goal"
    )
    for key, runs in outcomes.items():
        ratio = statistics.median(o.ratio for o in runs)
        rate = statistics.median(o.loader.rate for o in runs)
        base = statistics.median(o.baseline.rate for o in runs)
        peak = max(o.loader.peak_mb for o in runs)
        goal = GOAL_RATIO[key]
        ratios = f"  (ratios {' '.join(f'{o.ratio:.2f}' for o in runs)})" if len(runs) > 1 else ""
        print(
            f"  ({key}) {SCENARIOS[key]:<36}{rate:>11,.0f}{base:>14,.0f}{ratio:>7.2f}  "
            f"{f'>= {goal} ' + _goal(_ratio_met(ratio, goal)):<14}{peak:>8.0f}  "
            f"< {GOAL_PEAK_MB:.0f} {_goal(peak < GOAL_PEAK_MB)}{ratios}"
        )


def run_scale(args: argparse.Namespace, server: Server) -> None:
    files, lines, skus = args.scale_files, args.scale_lines, args.scale_skus
    day = Day(make_catalogue(max(skus, 1)), date(2026, 11, 23), seed=21)
    per_line = bytes_per_line(args.shape, day)
    total = files * min(lines, skus)
    needed = int(per_line * total * 1.05)
    print(
        f"--scale, shape {args.shape}: {files} store files x {min(lines, skus):,} lines "
        f"~ {total:,} lines, ~{needed / 1e9:.1f} GB"
    )
    free, database = server.data_directory_free(), total * DB_BYTES_PER_LINE
    if free is not None:
        print(
            f"  PostgreSQL's data directory: {free / 1e9:,.1f} GB free "
            f"(~{database / 1e9:.1f} GB needed)"
        )
        if free < database + 1_000_000_000:
            raise SystemExit("not enough room for the database: reduce --scale-files")
    work_root = pick_work_dir(needed, args.work_dir)
    with tempfile.TemporaryDirectory(prefix="bench_loader_scale_", dir=work_root) as tmp:
        work = Path(tmp)
        generated = write_scale(work / "inbox", args.shape, day, files, lines)
        print(f"  {generated.describe()} in {work}")
        url = server.create("scale")
        try:
            server.checkpoint()
            step = run_child("loader", generated.root, url, args, work / "logs", server.statements)
            size = server.size(url)
        finally:
            server.drop_all()
    post = step.post_seconds or 0.0
    whole = step.seconds + post
    print(
        f"  import: {step.lines:,} lines in {step.seconds:.1f}s ({step.rate:,.0f} lines/s, "
        f"CPU {step.cpu_seconds:.1f}s); "
        f"post-processing {post:.1f}s; total {whole:.1f}s ({step.lines / whole:,.0f} lines/s)"
    )
    print(
        f"  peak memory {step.peak_mb:.0f} MB (goal < {GOAL_PEAK_MB:.0f}: {_peak_goal(step)}); "
        f"database {size / 1e9:.2f} GB ({size / max(step.lines, 1):.0f} bytes per line)"
    )
    # the rate of the first and of the last tenth of the files: how it falls as tables grow
    # (from the moments files were done: a batch spans files, whose times overlap)
    done: list[tuple[int, float]] = [tuple(r) for r in step.extra.get("files_done", [])]
    if not done:
        raise SystemExit("the loader imported no file")
    tenth = max(1, len(done) // 10)
    first = sum(n for n, _ in done[:tenth]) / max(done[tenth - 1][1], 1e-9)
    last_start = done[-tenth - 1][1] if len(done) > tenth else 0.0
    last = sum(n for n, _ in done[-tenth:]) / max(done[-1][1] - last_start, 1e-9)
    print(f"  import rate over the first tenth of the files {first:,.0f} lines/s, last {last:,.0f}")
    full = FULL_SCALE[0] * FULL_SCALE[1]
    goal = f"goal < {GOAL_SCALE_SECONDS / 60:.0f} min"
    if step.lines < full * 0.95:
        linear = whole * full / step.lines
        onward = whole + (full - step.lines) / last  # the rest at the last tenth's rate
        print(
            f"  extrapolation to {FULL_SCALE[0]} x {FULL_SCALE[1]:,} = {full:,} lines: "
            f"{linear / 60:.1f} min at this run's rate ({_goal(linear < GOAL_SCALE_SECONDS)}), "
            f"{onward / 60:.1f} min at its last tenth's ({_goal(onward < GOAL_SCALE_SECONDS)}); "
            f"{goal} (tables 20x larger may slow it: compare the tenths above)"
        )
    else:
        print(f"  total {whole / 60:.1f} min ({goal}: {_goal(whole < GOAL_SCALE_SECONDS)})")
    print_statements("loader, import", step.statements, step.seconds, server)
    if step.post_statements is not None and step.post_seconds:
        print_statements("loader, post-processing", step.post_statements, step.post_seconds, server)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shape", choices=["bench", "listing"], default="bench")
    parser.add_argument(
        "--lines", type=int, help="lines of a day (bench: 1,000,000; listing: 210,000)"
    )
    parser.add_argument(
        "--stores", type=int, help="stores of a day (bench: lines / 28,571; listing: 7)"
    )
    parser.add_argument(
        "--skus", type=int, help="SKUs of a day (bench: 30,000; listing: lines / stores)"
    )
    parser.add_argument(
        "--scenarios",
        help="which of a-f to run (default: abcdef; with --file: a, or ab)",
    )
    parser.add_argument(
        "--file",
        type=Path,
        help="measure this JSON-lines file (or folder of *.jsonl files) instead of generated ones",
    )
    parser.add_argument("--repeat", type=int, default=1, help="run each scenario this many times")
    parser.add_argument("--batch-size", type=int, default=100_000, help="the loader's default")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument(
        "--work-dir",
        type=Path,
        help="where to write the files (default: a temporary folder with room)",
    )
    parser.add_argument(
        "--scale", action="store_true", help="a full day at real size instead of (a)-(d)"
    )
    parser.add_argument("--scale-files", type=int, default=FULL_SCALE[0])
    parser.add_argument(
        "--scale-lines", type=int, default=FULL_SCALE[1], help="lines per store file"
    )
    parser.add_argument("--scale-skus", type=int, default=30_000)
    parser.add_argument("--child", choices=["baseline", "loader"], help=argparse.SUPPRESS)
    parser.add_argument("--inbox", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--statements", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        result = (
            child_baseline(args.inbox, args.url, args.statements)
            if args.child == "baseline"
            else child_loader(args.inbox, args.url, args.batch_size, args.statements)
        )
        print(json.dumps(result))
        return
    allowed = "ab" if args.file else "".join(SCENARIOS)
    args.scenarios = args.scenarios or allowed[0] if args.file else args.scenarios or allowed
    if set(args.scenarios) - set(allowed):
        parser.error(f"--scenarios takes letters among {', '.join(allowed)}")
    args.scenarios = "".join(sorted(set(args.scenarios)))
    server = Server(args.postgres_url)
    if not server.statements:
        print(
            f"PostgreSQL time per statement kind: not available ({server.statements_why}; "
            "the loader keeps no timers per statement of its own)"
        )
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(server.drop_all)
        if args.scale:
            run_scale(args, server)
        elif args.file:
            run_file(args, server)
        else:
            run_scenarios(args, server)


if __name__ == "__main__":
    main()
