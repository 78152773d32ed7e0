"""A prepared statement run on an asyncio psycopg connection through libpq itself.

PostgreSQL's group-commit drivers (``ledger.postgres_writes``) send two statements,
each known in advance, with text parameters and a few text columns back. psycopg's ``execute`` cost 106-120 µs of CPU
per call here (a cursor, adaptation, the prepared-statement manager, row objects);
driving the connection's ``pgconn`` directly, as here, 50-64 µs, most of it the socket
and the event loop. Errors are psycopg's own exceptions, as ``execute`` raises them:
an SQL error as its SQLSTATE class (a unique violation is an ``IntegrityError``), a broken
connection as an ``OperationalError``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
from psycopg import pq
from psycopg.errors import error_from_result

_OK = (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK)


class Statement:
    """``sql`` (``$1``-style placeholders), prepared as ``name`` on each connection by
    ``prepare`` (call it once a connection is open) and run by ``run``."""

    def __init__(self, name: str, sql: str) -> None:
        self.name = name.encode()
        self.sql = sql.encode()

    async def prepare(self, conn: Any) -> None:
        conn.pgconn.send_prepare(self.name, self.sql)
        await _results(conn.pgconn)

    async def run(self, conn: Any, params: list[bytes]) -> list[dict[str, str | None]]:
        """The rows, each column as text (``None`` for NULL)."""
        pgconn = conn.pgconn
        pgconn.send_query_prepared(self.name, params)
        result = (await _results(pgconn))[-1]
        names = [result.fname(column).decode() for column in range(result.nfields)]
        return [
            {name: None if (value := result.get_value(row, column)) is None else value.decode()
             for column, name in enumerate(names)}
            for row in range(result.ntuples)
        ]


async def _results(pgconn: Any) -> list[Any]:
    """Flush what was sent, then read every result of it; raise the first error."""
    loop = asyncio.get_running_loop()
    while pgconn.flush():
        await _ready(loop, pgconn.socket, writing=True)
    results: list[Any] = []
    while True:
        pgconn.consume_input()
        while not pgconn.is_busy():
            result = pgconn.get_result()
            if result is None:
                return _checked(pgconn, results)
            results.append(result)
        await _ready(loop, pgconn.socket, writing=False)


def _checked(pgconn: Any, results: list[Any]) -> list[Any]:
    for result in results:
        if result.status not in _OK:
            if pgconn.status != pq.ConnStatus.OK:
                raise psycopg.OperationalError(pgconn.get_error_message().decode(errors="replace"))
            raise error_from_result(result)
    if not results:
        raise psycopg.OperationalError("the server sent no result")
    return results


async def _ready(loop: asyncio.AbstractEventLoop, fd: int, *, writing: bool) -> None:
    ready = loop.create_future()

    def wake() -> None:  # the descriptor may be reported again before the waiter runs
        if not ready.done():
            ready.set_result(None)

    (loop.add_writer if writing else loop.add_reader)(fd, wake)
    try:
        await ready
    finally:
        (loop.remove_writer if writing else loop.remove_reader)(fd)
