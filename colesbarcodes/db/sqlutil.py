"""Small SQL helpers shared by the database modules."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from sqlalchemy.orm import Session

__all__ = ["chunked", "in_chunks", "sql_in"]

SQLITE_CHUNK = 5000  # stays well under SQLite's limit of bound parameters


def chunked(values: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def in_chunks(session: Session, values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    """One chunk on PostgreSQL (``= ANY(array)`` takes any length), bounded ones on SQLite."""
    if session.get_bind().dialect.name == "postgresql":
        return [values] if values else []
    return chunked(values, SQLITE_CHUNK)


def sql_in(session: Session, column: Any, values: Sequence[Any]) -> Any:
    """``column IN values`` that stays one parameter on PostgreSQL (``= ANY(array)``)."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    return column.in_(values)
