"""One dialect-aware ``INSERT .. ON CONFLICT`` for PostgreSQL and SQLite."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.dialects import postgresql, sqlite

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from sqlalchemy import ColumnElement, Select, Table
    from sqlalchemy.engine import Dialect

__all__ = ["upsert"]


def upsert(
    dialect: Dialect,
    table: Table,
    *,
    conflict: Sequence[str],
    update: Sequence[str] = (),
    keep_existing: Sequence[str] = (),
    where: Callable[[Any], ColumnElement[bool]] | None = None,
    select: Select[Any] | None = None,
    columns: Sequence[str] = (),
) -> Any:
    """An insert that, on a clash of ``conflict`` columns, updates ``update`` columns.

    ``keep_existing`` columns are updated only when the new value is not NULL (a null never
    hides a real value). With no update columns the clash is ignored (``DO NOTHING``).
    ``select``/``columns`` make it an ``INSERT .. SELECT`` (for staging tables); otherwise
    pass the rows to ``execute``. ``where(excluded)`` guards the update (e.g. only newer rows win).
    """
    module = postgresql if dialect.name == "postgresql" else sqlite
    if dialect.name not in ("postgresql", "sqlite"):
        raise NotImplementedError(f"upserts are not implemented for {dialect.name}")
    stmt: Any = module.insert(table)
    if select is not None:
        if dialect.name == "sqlite":
            # SQLite needs a WHERE on INSERT .. SELECT to parse ON CONFLICT unambiguously.
            from sqlalchemy import true

            select = select.where(true())
        stmt = stmt.from_select(list(columns), select)
    if not update and not keep_existing:
        return stmt.on_conflict_do_nothing(index_elements=list(conflict))
    from sqlalchemy import func

    values: dict[str, Any] = {name: stmt.excluded[name] for name in update}
    for name in keep_existing:
        values[name] = func.coalesce(stmt.excluded[name], table.c[name])
    return stmt.on_conflict_do_update(
        index_elements=list(conflict),
        set_=values,
        where=None if where is None else where(stmt.excluded),
    )
