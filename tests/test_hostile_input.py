"""Hostile inbox files through the real loader (``coles-loader update --products --once``),
on SQLite and PostgreSQL.

Every file ends imported, quarantined with its file name, line number and reason, or left
in place with a warning; the loader exits cleanly, memory stays bounded, nothing outside
the inbox is read or written, and a second run changes nothing (no crash loop).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import func, select

from colesbarcodes.db.models import (
    CompanySku,
    ImportedFile,
    Product,
    ProductGroup,
    QuarantinedLine,
    StorePrice,
)
from loaders.importer import ImportOptions
from loaders.update import LogProgress, run_cycle
from tests.helpers import PROJECT, dump, run_loader

if TYPE_CHECKING:
    from collections.abc import Iterator

    from click.testing import Result
    from sqlalchemy.engine import Engine

    from colesbarcodes.inbox.claims import Inbox
    from loaders.line_count import LineTotal

MAX_LINE = ImportOptions().max_line_bytes  # 1 MiB
TOO_LONG = f"line longer than {MAX_LINE} bytes"
BOM = b"\xef\xbb\xbf"


def write_lines(path: Path, lines: list[bytes], *, mtime: float | None = None) -> Path:
    """Lines exactly as given (bytes, each followed by a new line)."""
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def line(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def load(database_url: str, inbox: Inbox, *extra: str) -> Result:
    return run_loader(
        database_url,
        "update",
        "--products",
        "--once",
        "--no-progress",
        "--inbox",
        str(inbox.root),
        *extra,
    )


def tree(root: Path) -> dict[str, str]:
    """Every entry under ``root`` (symlinks not followed): what it is, and its content."""
    entries = {}
    for path in sorted(root.rglob("*")):
        name = str(path.relative_to(root))
        if path.is_symlink():
            entries[name] = f"symlink to {os.readlink(path)}"
        elif path.is_file():
            with path.open("rb") as handle:
                start = handle.read(200).decode("utf-8", "replace")
            entries[name] = f"{path.stat().st_size} bytes: {start}"
        else:
            entries[name] = "directory" if path.is_dir() else "special file"
    return entries


def skus(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return sorted(conn.scalars(select(CompanySku.sku)), key=lambda s: (len(s), s))


def names(engine: Engine) -> dict[str, str | None]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(CompanySku.sku, Product.name).join(Product, Product.id == CompanySku.product_id)
        )
        return {sku: name for sku, name in rows}


def quarantine_files(inbox: Inbox) -> list[tuple[str, int, str, bool, str | None]]:
    """The records of every quarantine file: file, line, reason, imported, raw."""
    records = []
    for path in sorted(inbox.quarantine.glob("*.quarantine.jsonl")):
        for text in path.read_text().splitlines():
            record = json.loads(text)
            records.append(
                (
                    record["file"],
                    record["line"],
                    record["reason"],
                    record["imported"],
                    record["raw"],
                )
            )
    return sorted(records)


def quarantine_table(engine: Engine) -> list[tuple[str, int, str, bool, str | None]]:
    """The same records as stored in ``quarantined_lines``."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                ImportedFile.original_name,
                QuarantinedLine.line_no,
                QuarantinedLine.reason,
                QuarantinedLine.imported,
                QuarantinedLine.raw,
            ).join(ImportedFile, ImportedFile.id == QuarantinedLine.file_id)
        )
        return sorted((n, no, reason, bool(imp), raw) for n, no, reason, imp, raw in rows)


def ledger(engine: Engine) -> list[tuple[str, str, int, int, int]]:
    """(original name, status, lines done, imported, quarantined) of every imported file."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                ImportedFile.original_name,
                ImportedFile.status,
                ImportedFile.lines_done,
                ImportedFile.lines_imported,
                ImportedFile.lines_quarantined,
            )
        )
        return sorted((n, status, done, ok, bad) for n, status, done, ok, bad in rows)


def archived(inbox: Inbox) -> list[str]:
    """Original names of the archived files (the claim prefix removed)."""
    return sorted(path.name.split("--", 1)[1] for path in inbox.archive.iterdir())


def assert_a_second_run_changes_nothing(database_url: str, engine: Engine, inbox: Inbox) -> None:
    database, files = dump(engine), tree(inbox.root)
    again = load(database_url, inbox)
    assert again.exit_code == 0, again.output
    assert "0 files, 0 lines" in again.output
    assert dump(engine) == database
    assert tree(inbox.root) == files


# --- long lines and deep nesting -------------------------------------------------------


def padded_to(size: int, **fields: Any) -> bytes:
    """A valid JSON object of exactly ``size`` bytes (spaces before the closing brace)."""
    text = json.dumps(fields).encode()
    return text[:-1] + b" " * (size - len(text)) + b"}"


def test_lines_longer_than_the_limit_are_quarantined_and_the_rest_is_imported(
    database_url: str, engine: Engine, inbox: Inbox
) -> None:
    name = "coles_store-0584_long.jsonl"
    (inbox.root / name).write_bytes(
        line(sku=1, name="First")
        + b"\n"
        + padded_to(MAX_LINE, sku=2, name="Exactly at the limit")
        + b"\n"
        + padded_to(MAX_LINE + 1, sku=3, name="One byte too long")
        + b"\n"
        + b'{"sku": 4, "name": "'
        + b"x" * (5 * MAX_LINE)
        + b'"}\n'
        + line(sku=5, name="Last, without a final new line")
    )

    result = load(database_url, inbox)

    assert result.exit_code == 0, result.output
    assert "1 files, 5 lines" in result.output
    assert f"{name}: 2 lines quarantined" in result.output
    assert skus(engine) == ["1", "2", "5"]
    assert names(engine)["2"] == "Exactly at the limit"
    expected = [(name, 3, TOO_LONG, False, None), (name, 4, TOO_LONG, False, None)]
    assert quarantine_files(inbox) == expected  # the raw line is never held, nor kept
    assert quarantine_table(engine) == expected
    assert ledger(engine) == [(name, "done", 5, 3, 2)]
    assert archived(inbox) == [name]
    assert_a_second_run_changes_nothing(database_url, engine, inbox)


def test_deeply_nested_json_is_quarantined_without_a_recursion_error(
    database_url: str, engine: Engine, inbox: Inbox
) -> None:
    name = "coles_store-0584_nested.jsonl"
    arrays = b"[" * 100_000 + b"]" * 100_000
    objects = b'{"a": ' * 100_000 + b"1" + b"}" * 100_000
    within_the_limit = b"[" * 1000 + b"]" * 1000  # deeper than repr() can print
    lines = [
        arrays,
        b'{"sku": 2, "name": ' + objects + b"}",
        b'{"sku": 3, "barcode": ' + within_the_limit + b"}",
        b'{"sku": 4, "company": ' + within_the_limit + b"}",
        line(sku=5, name="Plain"),
    ]
    write_lines(inbox.root / name, lines)

    result = load(database_url, inbox)

    assert result.exit_code == 0, result.output
    assert skus(engine) == ["3", "5"]
    records = quarantine_files(inbox)
    assert [(r[1], r[3]) for r in records] == [(1, False), (2, False), (3, True), (4, False)]
    assert records[0][2].startswith("not valid JSON: depth limit exceeded")
    assert records[1][2].startswith("not valid JSON: depth limit exceeded")
    assert records[2][2] == "barcode rejected (unsupported type list); line imported without it"
    assert records[3][2] == "bad company <list>"
    for record, raw in zip(records, lines, strict=False):
        assert record[4] == (raw + b"\n")[:10_000].decode()  # the start of the line is kept
    assert quarantine_table(engine) == records
    assert_a_second_run_changes_nothing(database_url, engine, inbox)


# --- bytes that are not text ------------------------------------------------------------


def test_invalid_utf8_and_nul_characters_are_quarantined_with_a_clear_reason(
    database_url: str, engine: Engine, inbox: Inbox
) -> None:
    name = "coles_store-0584_bytes.jsonl"
    write_lines(
        inbox.root / name,
        [
            b'{"sku": 1, "name": "caf\xe9"}',  # Latin-1, not UTF-8
            b'{"sku": 2, "name": "\xc0\xaf"}',  # an over-long encoding of "/"
            b'{"sku": 3, "name": "a\x00b"}',  # a raw NUL byte inside a string
            b'{"sku": 4}\x00',  # and after the object
            b"\x00" * 64,
            b'{"sku": 6, "name": "a\\u0000b"}',  # a NUL written as an escape: no
            b'{"sku": 7, "store_id": "0584", "price": 2.5, "url": "https://x.test/\\u0000"}',
            b'{"sku": 8, "name": "\\ud83e"}',  # half of a surrogate pair
            line(sku=9, name="Crème brûlée", store_id="0584", price=4.5),
        ],
    )

    result = load(database_url, inbox)

    assert result.exit_code == 0, result.output
    assert skus(engine) == ["9"]
    assert names(engine) == {"9": "Crème brûlée"}
    records = quarantine_files(inbox)
    assert [(r[0], r[1], r[2]) for r in records] == [
        (name, 1, "not valid UTF-8: byte 0xe9 at position 23"),
        (name, 2, "not valid UTF-8: byte 0xc0 at position 20"),
        (
            name,
            3,
            "not valid JSON: unexpected control character in string: line 1 column 22 (char 21)",
        ),
        (name, 4, "not valid JSON: unexpected content after document: line 1 column 11 (char 10)"),
        (
            name,
            5,
            "not valid JSON: unexpected character, expected a JSON value: line 1 column 1 (char 0)",
        ),
        (name, 6, "name contains a NUL character"),
        (name, 7, "url contains a NUL character"),
        (name, 8, "not valid JSON: no low surrogate in string: line 1 column 21 (char 20)"),
    ]
    raws = [r[4] for r in records]
    assert raws[0] == '{"sku": 1, "name": "caf\ufffd"}\n'  # undecodable bytes replaced
    assert raws[2] == '{"sku": 3, "name": "a\\u0000b"}\n'  # NUL bytes written as escapes
    assert quarantine_table(engine) == records
    assert_a_second_run_changes_nothing(database_url, engine, inbox)


def test_values_the_database_cannot_hold_are_quarantined_instead_of_failing_every_run(
    database_url: str, engine: Engine, inbox: Inbox
) -> None:
    """Each of these once failed the batch (or the whole cycle) on every run."""
    name = "coles_store-0584_limits.jsonl"
    write_lines(
        inbox.root / name,
        [
            line(sku=1, scraped_at="9999-12-31T23:59:59-23:59"),  # past year 9999 in UTC
            line(sku=2, price=1_000_000_000),  # more than numeric(12, 3) holds
            line(sku=3, state="x" * 33),  # stores.state holds 32 characters
            b'{"sku": 1.5e300}',  # a float SKU of 301 digits
            b'{"sku": 12345678901234567890123}',  # digits a float cannot hold exactly
            line(sku=6, price=999_999_999.999, name="The dearest product"),
        ],
    )

    result = load(database_url, inbox)

    assert result.exit_code == 0, result.output
    assert skus(engine) == ["6"]
    with engine.connect() as conn:
        assert conn.scalar(select(StorePrice.price)) == 999_999_999.999
    assert [(r[1], r[2]) for r in quarantine_files(inbox)] == [
        (1, "scraped_at '9999-12-31T23:59:59-23:59' is out of range"),
        (2, "price 1000000000 is out of range"),
        (3, "state longer than 32 characters"),
        (4, "sku 1.5e+300 is too large for a JSON number: write it as a string"),
        (5, "sku 1.2345678901234568e+22 is too large for a JSON number: write it as a string"),
    ]
    assert_a_second_run_changes_nothing(database_url, engine, inbox)


def test_products_with_the_longest_names_are_grouped_across_companies(
    database_url: str, engine: Engine, inbox: Inbox
) -> None:
    long_brand, long_name = "B" * 900, "N" * 900  # each within the 1000 characters allowed
    write_lines(
        inbox.root / "mixed_store-0584.jsonl",
        [
            line(sku=1, brand=long_brand, name=long_name),
            line(company="woolworths", sku="W1", brand=long_brand, name=long_name),
        ],
    )

    result = load(database_url, inbox, "--max-failures", "1", "--pause", "0")

    assert result.exit_code == 0, result.output
    assert skus(engine) == ["1", "W1"]
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(ProductGroup)) == 1


# --- empty files, blank lines, Windows files ---------------------------------------------


def test_empty_blank_windows_and_bom_files_import_what_they_hold(
    database_url: str, engine: Engine, inbox: Inbox
) -> None:
    files = {
        "empty_store-0584.jsonl": b"",
        "blank_store-0584.jsonl": b"\n\n   \n\t\r\n",
        "windows_store-0584.jsonl": b'{"sku": 31, "name": "Windows"}\r\n'
        b'{"sku": 32, "store_id": "0601", "price": 1.5}\r\n\r\n',
        "marked_store-0584.jsonl": BOM + b'{"sku": 41, "name": "After the mark"}\n{"sku": 42}',
        "marked_blank.jsonl": BOM + b"\r\n",
    }
    for number, (name, content) in enumerate(files.items()):
        path = inbox.root / name
        path.write_bytes(content)
        os.utime(path, (1_700_000_000 + number, 1_700_000_000 + number))

    result = load(database_url, inbox)

    assert result.exit_code == 0, result.output
    assert "5 files, 4 lines" in result.output
    assert skus(engine) == ["31", "32", "41", "42"]
    assert names(engine) == {"31": "Windows", "32": None, "41": "After the mark", "42": None}
    with engine.connect() as conn:
        assert conn.scalar(select(StorePrice.price)) == 1.5
    assert quarantine_files(inbox) == []
    assert quarantine_table(engine) == []
    assert ledger(engine) == [
        ("blank_store-0584.jsonl", "done", 0, 0, 0),
        ("empty_store-0584.jsonl", "done", 0, 0, 0),
        ("marked_blank.jsonl", "done", 0, 0, 0),
        ("marked_store-0584.jsonl", "done", 2, 2, 0),
        ("windows_store-0584.jsonl", "done", 2, 2, 0),
    ]
    assert archived(inbox) == sorted(files)
    assert_a_second_run_changes_nothing(database_url, engine, inbox)


# --- a file of one gigabyte-long line, and files of many long lines ----------------------


# Runs a command and writes its peak memory (max RSS, KiB) to a file. A process of its
# own, so that the figure is the loader's alone: a child forked from the test process
# would count the test process's own memory, which a fork shares until the exec.
MEASURED = """
import resource, subprocess, sys
status = subprocess.call(sys.argv[2:])
with open(sys.argv[1], "w") as out:
    out.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(status if status >= 0 else 128 - status)
"""


def run_loader_process(
    database_url: str, inbox: Inbox, *extra: str
) -> tuple[int, str, float, float]:
    """The loader in a process of its own: exit status, output, seconds, and its peak
    memory (max RSS) in MB."""
    output = inbox.root.parent / "loader-output.txt"
    peak = inbox.root.parent / "loader-peak.txt"
    command = [sys.executable, "-m", "loaders", "update", "--products", "--once", "--no-progress"]
    started = time.monotonic()
    with output.open("wb") as sink:
        status = subprocess.call(
            [
                sys.executable,
                "-c",
                MEASURED,
                str(peak),
                *command,
                "--inbox",
                str(inbox.root),
                *extra,
            ],
            cwd=PROJECT,
            env={**os.environ, "DATABASE_URL": database_url},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    seconds = time.monotonic() - started
    return status, output.read_text(), seconds, int(peak.read_text()) / 1024


GIGABYTE = 1 << 30


@pytest.fixture(scope="module")
def gigabyte_line(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One file of one line of 1 GiB (a product line whose name never ends), written once
    for the module and removed after it."""
    folder = tmp_path_factory.mktemp("gigabyte")
    free = shutil.disk_usage(folder).free
    if free < 3 * GIGABYTE:
        pytest.skip(f"a 1 GiB test file needs 3 GiB of free disk; {free / GIGABYTE:.1f} GiB free")
    path = folder / "huge.jsonl"
    chunk = b"x" * (1 << 20)
    with path.open("wb") as out:
        out.write(b'{"sku": 1, "name": "')
        for _ in range(GIGABYTE // len(chunk)):
            out.write(chunk)
        out.write(b'"}\n')
    try:
        yield path
    finally:
        path.unlink()


def test_a_one_gigabyte_line_is_quarantined_in_bounded_memory_and_time(
    database_url: str, engine: Engine, inbox: Inbox, gigabyte_line: Path
) -> None:
    huge = inbox.root / "coles_store-0584_huge.jsonl"
    os.link(gigabyte_line, huge)  # the same gigabyte for each database, written once
    write_lines(inbox.root / "coles_store-0584_small.jsonl", [line(sku=2), line(sku=3)])
    try:
        status, output, seconds, peak_mb = run_loader_process(
            database_url, inbox, "--delete-imported"
        )
    finally:
        for leftover in inbox.root.rglob("*huge.jsonl"):
            leftover.unlink()  # never leave a gigabyte behind

    assert status == 0, output
    assert peak_mb < 300, f"peak memory {peak_mb:.0f} MB"
    assert seconds < 120
    assert "coles_store-0584_huge.jsonl: 1 lines quarantined" in output
    assert skus(engine) == ["2", "3"]
    expected = [("coles_store-0584_huge.jsonl", 1, TOO_LONG, False, None)]
    assert quarantine_files(inbox) == expected
    assert quarantine_table(engine) == expected
    assert_a_second_run_changes_nothing(database_url, engine, inbox)


def test_files_of_many_long_bad_lines_and_padded_values_are_read_in_bounded_memory(
    database_url: str, engine: Engine, inbox: Inbox
) -> None:
    """600 lines just under the limit (600 MB): bad JSON, whose start is kept for the
    quarantine, and values padded with a megabyte of spaces, which are never cached."""
    pad = MAX_LINE - 100
    kinds = 4
    with (inbox.root / "coles_store-0584_wide.jsonl").open("wb") as out:
        for n in range(1, 151):
            spaces = b" " * (pad - n)  # a different value on every line
            out.write(b'{"sku": %d, "name": "' % n + b"x" * pad + b"\n")  # never closed
            out.write(b'{"sku": %d, "store_id": "%s0584"}\n' % (1000 + n, spaces))
            out.write(b'{"sku": %d, "scraped_at": "%s2026-11-23"}\n' % (2000 + n, spaces))
            out.write(b'{"sku": %d, "barcode": "%s9300633600082"}\n' % (3000 + n, spaces))
        out.write(line(sku=9999, name="Last") + b"\n")

    status, output, _, peak_mb = run_loader_process(database_url, inbox, "--delete-imported")

    assert status == 0, output
    assert peak_mb < 300, f"peak memory {peak_mb:.0f} MB"
    assert skus(engine) == [*(str(3000 + n) for n in range(1, 151)), "9999"]
    records = quarantine_table(engine)
    assert len(records) == 150 * kinds
    assert {len(raw or "") for *_, raw in records} == {10_000}
    reasons = {(no % kinds, reason[:16], imported) for _, no, reason, imported, _ in records}
    assert reasons == {
        (1, "not valid JSON: ", False),
        (2, "bad store_id '  ", False),
        (3, "scraped_at '    ", False),
        (0, "barcode rejected", True),
    }
    assert_a_second_run_changes_nothing(database_url, engine, inbox)


# --- what is not a regular file, and file names -------------------------------------------


def test_symlinks_and_special_files_are_left_in_place_and_never_followed(
    database_url: str,
    engine: Engine,
    inbox: Inbox,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = write_lines(outside / "secret.jsonl", [line(sku=666, name="Outside the inbox")])
    (inbox.root / "linked_store-0584.jsonl").symlink_to(secret)
    (inbox.root / "dangling.jsonl").symlink_to(tmp_path / "nowhere.jsonl")
    (inbox.root / "folder-link.jsonl").symlink_to(outside, target_is_directory=True)
    planted_claim = "20260101T000000-deadbeef--planted.jsonl"  # as if a claim was abandoned
    (inbox.processing / planted_claim).symlink_to(secret)
    os.mkfifo(inbox.root / "pipe.jsonl")  # opening it would block for ever
    (inbox.root / "folder.jsonl").mkdir()
    write_lines(inbox.root / "good_store-0584.jsonl", [line(sku=1, name="Good")])
    outside_before = tree(outside)

    with caplog.at_level(logging.WARNING):
        result = load(database_url, inbox)

    assert result.exit_code == 0, result.output
    assert "1 files, 1 lines" in result.output
    assert skus(engine) == ["1"]
    assert archived(inbox) == ["good_store-0584.jsonl"]
    assert tree(outside) == outside_before  # nothing read there was moved or changed
    assert os.readlink(inbox.root / "linked_store-0584.jsonl") == str(secret)
    assert os.readlink(inbox.processing / planted_claim) == str(secret)
    warnings = sorted(
        r.getMessage() for r in caplog.records if r.name == "colesbarcodes.inbox.claims"
    )
    assert warnings == sorted(
        f"Leaving {path} in place: it is {what}, and only regular files are imported"
        for path, what in [
            (inbox.root / "linked_store-0584.jsonl", "a symlink"),
            (inbox.root / "dangling.jsonl", "a symlink"),
            (inbox.root / "folder-link.jsonl", "a symlink"),
            (inbox.processing / planted_claim, "a symlink"),
            (inbox.root / "pipe.jsonl", "not a regular file"),
            (inbox.root / "folder.jsonl", "not a regular file"),
        ]
    )  # each once, however often the inbox is listed
    assert_a_second_run_changes_nothing(database_url, engine, inbox)


def beside(folder: Path, inbox: Inbox) -> dict[str, str]:
    """Every entry of ``folder`` outside the inbox, but for the SQLite database's files."""
    return {
        name: what
        for name, what in tree(folder).items()
        if not name.startswith((inbox.root.name, "test.sqlite3"))
    }


ODD_NAMES = {
    # on disk (bytes: names need not be UTF-8)         → the name it is imported under
    b"..\\..\\escape_store-0584.jsonl": "..\\..\\escape_store-0584.jsonl",
    b"..%2F..%2Fetc%2Fpasswd.jsonl": "..%2F..%2Fetc%2Fpasswd.jsonl",
    b"...jsonl": "...jsonl",
    b"-rf --no-preserve-root.jsonl": "-rf --no-preserve-root.jsonl",
    b"a--b--c.jsonl": "a--b--c.jsonl",  # the claim's own separator
    b"$(touch pwned); `touch pwned`.jsonl": "$(touch pwned); `touch pwned`.jsonl",
    b" spaced  name .jsonl": " spaced  name .jsonl",
    "日本語_store-0601.jsonl".encode(): "日本語_store-0601.jsonl",
    b"new\nline.jsonl": "new\\nline.jsonl",
    b"caf\xe9_store-0584.jsonl": "caf\\xe9_store-0584.jsonl",
    "\u202elnosj.exe.jsonl".encode(): "\\u202elnosj.exe.jsonl",  # right-to-left override
}


def test_odd_file_names_are_imported_under_printable_names_without_leaving_the_inbox(
    database_url: str,
    engine: Engine,
    inbox: Inbox,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A file name cannot hold "/", so no name can point outside the inbox; these are the
    nearest: traversal look-alikes, shell and option syntax, bytes that are not UTF-8,
    control characters, and a name too long for the claim's prefix."""
    expected = dict(ODD_NAMES)
    long_name = b"x" * 240 + b".jsonl"  # 246 bytes: with the claim's prefix, over 255
    for number, raw_name in enumerate([*ODD_NAMES, long_name], 1):
        write_lines(inbox.root / os.fsdecode(raw_name), [line(sku=number)])
    around_before = beside(tmp_path, inbox)

    with caplog.at_level(logging.WARNING):
        result = load(database_url, inbox)

    assert result.exit_code == 0, result.output
    assert f"{len(ODD_NAMES) + 1} files, {len(ODD_NAMES) + 1} lines" in result.output
    assert skus(engine) == [str(n) for n in range(1, len(ODD_NAMES) + 2)]
    stored = [name for name, *_ in ledger(engine)]
    shortened = [name for name in stored if name.startswith("xxx")]
    assert sorted(set(stored) - set(shortened)) == sorted(expected.values())
    assert len(shortened) == 1
    assert len(shortened[0].encode()) == 200
    assert shortened[0].startswith("x" * 180)
    assert shortened[0].endswith(".jsonl")
    assert archived(inbox) == sorted(stored)
    assert sorted(inbox.root.iterdir()) == sorted(
        [inbox.processing, inbox.archive, inbox.quarantine]
    )
    assert beside(tmp_path, inbox) == around_before  # nothing was written next to the inbox
    assert not list(tmp_path.rglob("pwned"))
    assert not (Path.cwd() / "pwned").exists()
    renamed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Claiming")]
    assert len(renamed) == 4  # the new line, the Latin-1 byte, the override, the long name
    assert_a_second_run_changes_nothing(database_url, engine, inbox)


# --- files that vanish -------------------------------------------------------------------


def test_a_file_removed_after_the_inbox_was_listed_is_passed_over(
    database_url: str, engine: Engine, inbox: Inbox
) -> None:
    for number, name in enumerate(["a.jsonl", "b.jsonl", "c.jsonl"]):
        write_lines(inbox.root / name, [line(sku=10 * (number + 1))], mtime=1_700_000_000 + number)

    class AnotherLoaderTakesB(LogProgress):
        """Between the cycle's listing of the inbox and its first claim."""

        def start(self, total: LineTotal, files: int) -> None:
            super().start(total, files)
            (inbox.root / "b.jsonl").unlink()

    report = run_cycle(engine, inbox, ImportOptions(), AnotherLoaderTakesB())

    assert [f.name for f in report.files] == ["a.jsonl", "c.jsonl"]
    assert skus(engine) == ["10", "30"]
    assert archived(inbox) == ["a.jsonl", "c.jsonl"]
    assert_a_second_run_changes_nothing(database_url, engine, inbox)


def test_a_file_removed_from_processing_while_it_is_read_is_still_imported_whole(
    database_url: str, engine: Engine, inbox: Inbox, caplog: pytest.LogCaptureFixture
) -> None:
    write_lines(inbox.root / "a.jsonl", [line(sku=n) for n in range(1, 7)], mtime=1_700_000_000)
    write_lines(inbox.root / "b.jsonl", [line(sku=7), line(sku=8)], mtime=1_700_000_100)

    class SomeoneDeletesTheClaimedFile(LogProgress):
        def advance(self, lines: int) -> None:
            super().advance(lines)
            for claimed in inbox.processing.glob("*--a.jsonl"):
                claimed.unlink()  # after the first batch of two lines

    with caplog.at_level(logging.WARNING):
        report = run_cycle(
            engine, inbox, ImportOptions(batch_size=2), SomeoneDeletesTheClaimedFile()
        )

    assert [(f.name, f.lines, f.imported) for f in report.files] == [
        ("a.jsonl", 6, 6),
        ("b.jsonl", 2, 2),
    ]
    assert skus(engine) == [str(n) for n in range(1, 9)]
    assert ledger(engine) == [("a.jsonl", "done", 6, 6, 0), ("b.jsonl", "done", 2, 2, 0)]
    assert archived(inbox) == ["b.jsonl"]  # a.jsonl left nothing to archive
    assert any(
        "a.jsonl was removed from" in r.getMessage() and "it was read whole" in r.getMessage()
        for r in caplog.records
    )
    assert_a_second_run_changes_nothing(database_url, engine, inbox)


def test_an_abandoned_claim_whose_name_is_not_utf8_is_renamed_and_resumed(
    database_url: str, engine: Engine, inbox: Inbox, caplog: pytest.LogCaptureFixture
) -> None:
    """Claims made before names were made printable could not be recorded, and failed
    every run: the next run renames them and imports them."""
    claim = os.fsdecode(b"20260101T000000-abcdef12--caf\xe9_store-0584.jsonl")
    write_lines(inbox.processing / claim, [line(sku=1, name="Left behind", price=2.0)])

    with caplog.at_level(logging.WARNING):
        result = load(database_url, inbox)

    assert result.exit_code == 0, result.output
    assert skus(engine) == ["1"]
    assert ledger(engine) == [("caf\\xe9_store-0584.jsonl", "done", 1, 1, 0)]
    assert [p.name for p in inbox.archive.iterdir()] == [
        "20260101T000000-abcdef12--caf\\xe9_store-0584.jsonl"
    ]
    assert any(r.getMessage().startswith("Renamed the claim") for r in caplog.records)
    assert_a_second_run_changes_nothing(database_url, engine, inbox)


def test_analyze_jsonl_reports_a_hostile_file_without_a_crash(tmp_path: Path) -> None:
    """What a person runs on a file before dropping it in the inbox (no database)."""
    path = tmp_path / "coles_store-0584_hostile.jsonl"
    path.write_bytes(
        BOM
        + line(sku=1, name="After the mark")
        + b"\r\n"
        + b"[" * 100_000
        + b"]" * 100_000
        + b"\n"
        + b'{"sku": 3, "company": '
        + b"[" * 1000
        + b"]" * 1000
        + b"}\n"
        + b'{"sku": 4, "name": "caf\xe9"}\n'
        + b'{"sku": 5, "name": "a\\u0000b"}\n'
        + b'{"sku": 6, "name": "'
        + b"x" * (2 * MAX_LINE)
        + b'"}\n'
    )

    result = run_loader(
        f"sqlite:///{tmp_path / 'unused.sqlite3'}", "analyze-jsonl", str(path), "--json"
    )

    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert (report["lines"], report["importable"], report["bad_lines"]) == (6, 1, 5)
    assert report["bad_reasons"] == {
        "not valid JSON": 1,
        "bad company <list>": 1,
        "not valid UTF-8": 1,
        "name contains a NUL character": 1,
        TOO_LONG: 1,
    }
