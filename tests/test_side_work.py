"""The COPY writer that gives the loader other work while PostgreSQL stores the rows.

A trigger that sleeps a little per row keeps the server busy long after the client has
sent its last row, as a large COPY into indexed tables does; the side work must run then,
and the COPY must end exactly as a plain one would: every row stored, errors raised, the
connection usable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg
import pytest

from colesbarcodes.db.side_work import (
    OverlappingCopyWriter,
    execute_with_side_work,
    waits_with_side_work,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

_SLOW_TABLE = """
    CREATE TABLE slow_rows (id int PRIMARY KEY, label text);
    CREATE FUNCTION slow_row() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN PERFORM pg_sleep(0.002); RETURN NEW; END $$;
    CREATE TRIGGER slow_row BEFORE INSERT ON slow_rows FOR EACH ROW EXECUTE FUNCTION slow_row();
"""


@pytest.fixture
def connection(postgres_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(postgres_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        conn.execute(_SLOW_TABLE)
        conn.commit()
        yield conn
        conn.rollback()
        conn.execute("DROP TABLE slow_rows; DROP FUNCTION slow_row()")
        conn.commit()


class _Steps:
    """Side work that counts its steps and has ``limit`` of them to do."""

    def __init__(self, limit: int, fail_at: int | None = None) -> None:
        self.limit, self.fail_at, self.done = limit, fail_at, 0

    def __call__(self) -> bool:
        self.done += 1
        if self.done == self.fail_at:
            raise RuntimeError("side work failed")
        return self.done < self.limit


def _copy_rows(conn: psycopg.Connection, rows: range, side_work: _Steps) -> None:
    with conn.cursor() as cursor:
        writer = OverlappingCopyWriter(cursor, side_work)
        with cursor.copy("COPY slow_rows (id, label) FROM STDIN", writer=writer) as copy:
            copy.write("".join(f"{i}\trow {i}\n" for i in rows))


def _count(conn: psycopg.Connection) -> int:
    (count,) = conn.execute("SELECT count(*) FROM slow_rows").fetchone() or (0,)
    return int(count)


def test_side_work_runs_while_the_server_stores_the_rows_and_every_row_is_stored(
    connection: psycopg.Connection,
) -> None:
    steps = _Steps(limit=1_000_000)
    _copy_rows(connection, range(100), steps)  # 100 rows x 2 ms: the server works 0.2 s
    connection.commit()
    assert _count(connection) == 100
    assert steps.done > 10  # many steps, not one: it ran while the server worked


def test_side_work_that_runs_out_is_not_asked_again_and_the_copy_still_ends(
    connection: psycopg.Connection,
) -> None:
    steps = _Steps(limit=3)
    _copy_rows(connection, range(50), steps)
    connection.commit()
    assert steps.done == 3
    assert _count(connection) == 50


def test_a_refused_copy_raises_the_database_error_and_leaves_the_connection_usable(
    connection: psycopg.Connection,
) -> None:
    steps = _Steps(limit=1_000_000)
    _copy_rows(connection, range(30), steps)
    with pytest.raises(psycopg.errors.UniqueViolation):
        _copy_rows(connection, range(20, 40), steps)  # 20..29 again, in one transaction
    connection.rollback()
    assert _count(connection) == 0
    assert connection.execute("SELECT 1").fetchone() == (1,)


def test_side_work_that_fails_finishes_the_copy_first_then_raises(
    connection: psycopg.Connection,
) -> None:
    steps = _Steps(limit=1_000_000, fail_at=2)
    with pytest.raises(RuntimeError, match="side work failed"):
        _copy_rows(connection, range(40), steps)
    # the COPY itself completed: the transaction is intact and holds its rows
    assert _count(connection) == 40
    connection.commit()
    assert steps.done == 2  # not called again after it failed


def test_a_statement_runs_with_side_work_while_the_server_works_and_its_errors_are_raised(
    connection: psycopg.Connection,
) -> None:
    steps = _Steps(limit=1_000_000)
    execute_with_side_work(
        connection, "INSERT INTO slow_rows SELECT i, 'row' FROM generate_series(1, 80) i", steps
    )
    assert _count(connection) == 80
    assert steps.done > 10

    with pytest.raises(psycopg.errors.UniqueViolation):
        execute_with_side_work(connection, "INSERT INTO slow_rows VALUES (80, 'again')", steps)
    connection.rollback()
    assert connection.execute("SELECT 1").fetchone() == (1,)


def test_side_work_runs_while_a_pipelines_answers_are_awaited_and_they_all_arrive(
    connection: psycopg.Connection,
) -> None:
    steps = _Steps(limit=1_000_000)
    with waits_with_side_work(connection, steps) as side, connection.pipeline():
        slow = connection.execute("SELECT count(*) FROM (SELECT pg_sleep(0.2)) s")
        quick = connection.execute("SELECT 41 + 1")
    assert side.failure is None
    assert steps.done > 10  # it ran while the server slept
    assert slow.fetchone() == (1,)
    assert quick.fetchone() == (42,)
    assert connection.execute("SELECT 1").fetchone() == (1,)  # waits as usual again


def test_side_work_that_fails_while_answers_are_awaited_is_handed_over_not_raised(
    connection: psycopg.Connection,
) -> None:
    steps = _Steps(limit=1_000_000, fail_at=3)
    with waits_with_side_work(connection, steps) as side, connection.pipeline():
        answer = connection.execute("SELECT 1 FROM pg_sleep(0.2)")
    assert steps.done == 3  # not called again after it failed
    assert answer.fetchone() == (1,)  # the answer was taken all the same
    with pytest.raises(RuntimeError, match="side work failed"):
        side.raise_failure()


def test_a_failing_statement_is_raised_as_usual_while_side_work_waits(
    connection: psycopg.Connection,
) -> None:
    steps = _Steps(limit=1_000_000)
    with pytest.raises(psycopg.errors.DivisionByZero):  # noqa: SIM117
        with waits_with_side_work(connection, steps), connection.pipeline():
            connection.execute("SELECT pg_sleep(0.1), 1 / 0")
    connection.rollback()
    assert connection.execute("SELECT 1").fetchone() == (1,)
