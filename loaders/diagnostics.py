"""File diagnostics that need no database: what is really in a JSON-lines file."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Any

from colesbarcodes.inbox.lines import LineError, decode_line, parse_object, store_from_filename
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
    """Lines, bad lines (with examples), and per key: how often present, with which types."""
    lines = objects = importable = skipped = 0
    bad: Counter[str] = Counter()
    bad_examples: list[dict[str, Any]] = []
    presence: Counter[str] = Counter()
    types: dict[str, Counter[str]] = defaultdict(Counter)
    default_store = store_from_filename(path.name)

    def reject(number: int, reason: str) -> None:
        bad[reason.split(":")[0]] += 1
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
                if parse_object(value, default_store) is None:
                    skipped += 1
                else:
                    importable += 1
            except LineError as exc:
                reject(number, exc.reason)
    return {
        "file": str(path),
        "lines": lines,
        "objects": objects,
        "importable": importable,
        "skipped_rows": skipped,
        "bad_lines": sum(bad.values()),
        "bad_reasons": dict(bad.most_common()),
        "bad_examples": bad_examples,
        "store_from_file_name": default_store,
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
    with path.open("rb") as stream:
        for _, raw in iter_lines(stream, max_line_bytes):
            try:
                line = None if raw is None else parse_object(decode_line(raw))
            except LineError:
                unreadable += 1
                continue
            if line is not None and line.company == company:
                skus.add(line.sku)
    return skus, unreadable
