"""Other work for the client while PostgreSQL stores what it was sent, or answers it.

The loader is bound by its own CPU and the database by its own: at the end of a COPY the
client sent its last row long ago and waits, idle, while the server inserts the rows still
in its socket buffer and updates their indexes (a quarter of an import's time); an upsert
of a store's prices is a wait of the same kind. With :class:`OverlappingCopyWriter` and
:func:`execute_with_side_work` that wait runs *side work* instead: small steps of CPU work
that need no database (the loader parses the next lines), taken while the server is busy,
until it answers or the work runs out. Nothing changes in what is sent or when the
statement counts as done: its result is read, and checked, before the call returns.
:func:`waits_with_side_work` does the same for a pipeline of questions (a batch's reads of
SKUs, catalogue and prices), whose answers would otherwise be waited for idle.
"""

from __future__ import annotations

import contextlib
import select
import selectors
from typing import TYPE_CHECKING, Any

from psycopg import errors, pq
from psycopg.copy import LibpqWriter

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterator

    from psycopg import Connection, Cursor
    from psycopg.abc import Buffer

__all__ = ["OverlappingCopyWriter", "execute_with_side_work", "waits_with_side_work"]


class OverlappingCopyWriter(LibpqWriter):
    """:class:`psycopg.copy.LibpqWriter` that runs ``side_work`` while the server finishes.

    ``side_work()`` does one small step of CPU work that needs no database (a millisecond
    or so) and returns whether there is more to do.
    An exception raised by the side work does not break the COPY: the COPY is finished
    first (so the connection stays usable), then the exception is raised.
    """

    def __init__(self, cursor: Cursor[Any], side_work: Callable[[], bool]) -> None:
        super().__init__(cursor)
        self._wait = _SideWorkWait(self._pgconn, side_work)

    def _put(self, data: Buffer) -> None:
        pgconn = self._pgconn
        while pgconn.put_copy_data(data) == 0:  # libpq's buffer is full
            self._wait(write=True)
        while pgconn.flush() == 1:  # the server is not taking rows as fast as they come
            self._wait(write=True)

    def finish(self, exc: BaseException | None = None) -> None:
        if exc is not None:
            super().finish(exc)
            return
        pgconn = self._pgconn
        while pgconn.put_copy_end(None) == 0:  # libpq's buffer is full
            self._wait(write=True)
        while pgconn.flush() == 1:  # the last rows are still on their way
            self._wait(write=True)
        _take_results(self.connection, self._wait)
        self._wait.raise_failure()


class _SideWorkWait:
    """A wait on the connection's socket: one step of side work while there is some, then
    blocking until the socket is ready. A side work that fails is kept, and not asked
    again, until :meth:`raise_failure` (once the statement in flight is done)."""

    def __init__(self, pgconn: pq.abc.PGconn, side_work: Callable[[], bool]) -> None:
        self.pgconn = pgconn
        self.side_work: Callable[[], bool] | None = side_work
        self.failure: BaseException | None = None

    def __call__(self, *, write: bool) -> None:
        if self.step():
            return
        if write:
            select.select([], [self.pgconn.socket], [])
        else:
            select.select([self.pgconn.socket], [], [])

    def step(self) -> bool:
        """One step of the side work, if any is left; whether more is."""
        if self.side_work is None:
            return False
        try:
            if self.side_work():
                return True
        except Exception as error:  # finish the statement first, raise afterwards
            self.failure = error
        self.side_work = None
        return False

    def raise_failure(self) -> None:
        failure, self.failure = self.failure, None
        if failure is not None:
            raise failure


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
    pgconn = connection.pgconn
    wait = _SideWorkWait(pgconn, side_work)
    pgconn.send_query(statement.encode())  # raises if it cannot be sent
    while pgconn.flush() == 1:
        wait(write=True)
    _take_results(connection, wait)
    wait.raise_failure()


@contextlib.contextmanager
def waits_with_side_work(
    connection: Connection[Any], side_work: Callable[[], bool]
) -> Iterator[_SideWorkWait]:
    """Inside the block, the connection's waits for the server run ``side_work`` (until
    the server is ready or the work runs out): a pipeline's answers, taken when the block
    leaves the pipeline, are waited for while the client works.

    psycopg waits by consuming a generator that yields what it waits for (read, write)
    and is sent what is ready; :meth:`psycopg.Connection.wait` is given a generator that
    polls first and runs side work while nothing is ready. A side work that fails is not
    asked again; the block gets the wait, whose ``raise_failure()`` raises the failure
    once the caller has taken the answers.
    """
    side = _SideWorkWait(connection.pgconn, side_work)
    wait = connection.wait

    def side_work_wait(gen: Any, *args: Any, **kwargs: Any) -> Any:
        return wait(_polling(gen, side), *args, **kwargs)

    connection.wait = side_work_wait  # type: ignore[method-assign]
    try:
        yield side
    finally:
        del connection.wait


def _polling(gen: Generator[Any, Any, Any], side: _SideWorkWait) -> Any:
    """psycopg's wait generator ``gen``, with side work while the socket is not ready."""
    fileno = side.pgconn.socket
    try:
        wanted = next(gen)
        while True:
            ready = 0
            while side.side_work is not None:
                reading, writing, _ = select.select(
                    [fileno] if wanted & _READ else [], [fileno] if wanted & _WRITE else [], [], 0
                )
                ready = (_READ if reading else 0) | (_WRITE if writing else 0)
                if ready:
                    break
                side.step()
            if not ready:
                ready = yield wanted
            wanted = gen.send(ready)
    except StopIteration as stop:
        return stop.value


# what psycopg's wait generators ask for and are told (``psycopg.abc.PQGen``)
_READ, _WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE
