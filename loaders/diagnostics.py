"""File diagnostics that need no database: what is really in a JSON-lines file."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Any

from colesbarcodes.inbox.line_reader import LineReader
from colesbarcodes.inbox.lines import LineError, ProductLine, decode_line
from colesbarcodes.inbox.reading import iter_lines

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["analyze_jsonl", "file_skus"]

_TYPE_NAMES = {
    type(None): "null",
    bool: "bool",
    int: "int",
    float: "float",
    str: "string",
    dict: "object",
    list: "array",
}


def analyze_jsonl(path: Path, max_line_bytes: int = 1 << 20, examples: int = 5) -> dict[str, Any]:
    """Lines, bad lines and rows (with examples), rows importable and skipped (by reason),
    per key how often present with which types, and the fields the loader ignores."""
    lines = objects = importable = skipped = 0
    bad: Counter[str] = Counter()
    bad_examples: list[dict[str, Any]] = []
    presence: Counter[str] = Counter()
    types: dict[str, Counter[str]] = defaultdict(Counter)
    skipped_by_reason: Counter[str] = Counter()
    reader = LineReader(path.name)

    def reject(number: int, reason: str, kind: str | None = None) -> None:
        bad[kind or reason.split(":")[0]] += 1
        if len(bad_examples) < examples:
            bad_examples.append({"line": number, "reason": reason})

    with path.open("rb") as stream:
        for number, raw in iter_lines(stream, max_line_bytes):
            lines += 1
            if raw is None:
                reject(number, f"line longer than {max_line_bytes} bytes")
                continue
            try:
                value = decode_line(raw)
            except LineError as exc:
                reject(number, exc.reason)
                continue
            if isinstance(value, dict):
                objects += 1
                for key, item in value.items():
                    presence[key] += 1
                    types[key][_TYPE_NAMES.get(type(item), type(item).__name__)] += 1
            try:
                read = reader.read_object(value)
            except LineError as exc:
                reject(number, exc.reason)
                continue
            if isinstance(read, ProductLine):
                importable += 1
                continue
            importable += len(read.lines)
            skipped += len(read.skipped)
            skipped_by_reason.update(read.skipped)
            for error in read.errors:  # rows of a line of several: named by their place
                reject(number, error, error.partition(": ")[2].split(":")[0])
    return {
        "file": str(path),
        "lines": lines,
        "objects": objects,
        "importable": importable,
        "skipped_rows": skipped,
        "skipped_by_reason": dict(skipped_by_reason.most_common()),
        "bad_lines": sum(bad.values()),
        "bad_reasons": dict(bad.most_common()),
        "bad_examples": bad_examples,
        "store_from_file_name": reader.default_store,
        "company_from_file_name": reader.file_company,
        "unknown_fields": [
            {"field": name, "did_you_mean": meant} for name, meant in reader.unknown_fields.items()
        ],
        "fields": [
            {
                "field": key,
                "present": count,
                "pct": round(100.0 * count / objects, 2) if objects else 0.0,
                "types": dict(types[key].most_common()),
            }
            for key, count in sorted(presence.items(), key=lambda kv: (-kv[1], kv[0]))
        ],
    }


def file_skus(path: Path, company: str, max_line_bytes: int = 1 << 20) -> tuple[set[str], int]:
    """The SKUs of one company in a file, and how many lines could not be read."""
    skus: set[str] = set()
    unreadable = 0
    reader = LineReader(path.name)
    with path.open("rb") as stream:
        for _, raw in iter_lines(stream, max_line_bytes):
            try:
                if raw is None:
                    raise LineError("line too long")
                read = reader.read(raw)
            except LineError:
                unreadable += 1
                continue
            lines = [read] if isinstance(read, ProductLine) else [x for _, x in read.lines]
            skus.update(line.sku for line in lines if line.company == company)
    return skus, unreadable
