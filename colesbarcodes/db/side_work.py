"""Other work for the client while PostgreSQL stores what it was sent.

The loader is bound by its own CPU and the database by its own: at the end of a COPY the
client sent its last row long ago and waits, idle, while the server inserts the rows still
in its socket buffer and updates their indexes (a quarter of an import's time); an upsert
of a store's prices is a wait of the same kind. With :class:`OverlappingCopyWriter` and
:func:`execute_with_side_work` that wait runs *side work* instead: small steps of CPU work
that need no database (the loader parses the next lines), taken while the server is busy,
until it answers or the work runs out. Nothing changes in what is sent or when the
statement counts as done: its result is read, and checked, before the call returns.
"""

from __future__ import annotations

import select
from typing import TYPE_CHECKING, Any

from psycopg import errors, pq
from psycopg.copy import LibpqWriter

if TYPE_CHECKING:
    from collections.abc import Callable

    from psycopg import Connection, Cursor
    from psycopg.abc import Buffer

__all__ = ["OverlappingCopyWriter", "execute_with_side_work"]


class OverlappingCopyWriter(LibpqWriter):
    """:class:`psycopg.copy.LibpqWriter` that runs ``side_work`` while the server finishes.

    ``side_work()`` does one small step of CPU work that needs no database (a millisecond
    or so) and returns whether there is more to do.
    An exception raised by the side work does not break the COPY: the COPY is finished
    first (so the connection stays usable), then the exception is raised.
    """

    def __init__(self, cursor: Cursor[Any], side_work: Callable[[], bool]) -> None:
        super().__init__(cursor)
        self._side_work: Callable[[], bool] | None = side_work
        self._failure: BaseException | None = None

    def _put(self, data: Buffer) -> None:
        if self._side_work is None:
            super()._put(data)
            return
        pgconn = self._pgconn
        while pgconn.put_copy_data(data) == 0:  # libpq's buffer is full
            self._wait(write=True)
        while pgconn.flush() == 1:  # the server is not taking rows as fast as they come
            self._wait(write=True)

    def finish(self, exc: BaseException | None = None) -> None:
        if exc is not None or self._side_work is None:
            super().finish(exc)
            return
        pgconn = self._pgconn
        while pgconn.put_copy_end(None) == 0:  # libpq's buffer is full
            self._wait(write=True)
        while pgconn.flush() == 1:  # the last rows are still on their way
            self._wait(write=True)
        _take_results(self.connection, self._wait)
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure

    def _wait(self, *, write: bool) -> None:
        """One step of side work, or, when there is none left, block until the socket
        is ready."""
        if self._side_work is not None:
            try:
                if self._side_work():
                    return
            except Exception as error:  # finish the COPY first, raise afterwards
                self._failure = error
            self._side_work = None
        _block(self._pgconn, write=write)


def _take_results(connection: Connection[Any], wait: Callable[..., None]) -> None:
    """Wait (calling ``wait(write=False)``) until the server has answered the statement in
    flight, then take its results; raises the database's error if it failed."""
    pgconn = connection.pgconn
    while True:
        pgconn.consume_input()
        if not pgconn.is_busy():
            break
        wait(write=False)
    results = []
    while (result := pgconn.get_result()) is not None:
        results.append(result)
    for result in results:
        if result.status not in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK):
            raise errors.error_from_result(result, encoding=connection.info.encoding)


def execute_with_side_work(
    connection: Connection[Any], statement: str, side_work: Callable[[], bool]
) -> None:
    """Run a statement without parameters or rows to return (an ``INSERT .. SELECT``),
    doing ``side_work`` while the server runs it; as :class:`OverlappingCopyWriter`, a
    failing side work is raised once the statement is done."""
    failure: list[BaseException] = []
    work: list[Callable[[], bool]] = [side_work]

    def wait(*, write: bool) -> None:
        if work:
            try:
                if work[0]():
                    return
            except Exception as error:
                failure.append(error)
            work.clear()
        _block(connection.pgconn, write=write)

    pgconn = connection.pgconn
    pgconn.send_query(statement.encode())  # raises if it cannot be sent
    while pgconn.flush() == 1:
        wait(write=True)
    _take_results(connection, wait)
    if failure:
        raise failure[0]


def _block(pgconn: pq.abc.PGconn, *, write: bool) -> None:
    if write:
        select.select([], [pgconn.socket], [])
    else:
        select.select([pgconn.socket], [], [])
