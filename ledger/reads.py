"""The read entry point for every query of the ledger's tables and the read models: a
small pool of threads, each with its own connection, so that an event loop never blocks
on the database. The query is given a ``Queries`` on that connection; the read models
build their own (``projections.queries``) from its ``db`` and ``conn``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from ledger.connections import ThreadConnections
from ledger.database import Database
from ledger.errors import LedgerUnavailable
from ledger.failures import classify, is_broken
from ledger.queries import Queries

T = TypeVar("T")


class Reader:
    def __init__(self, db: Database, threads: int = 4) -> None:
        self._db = db
        self._connections = ThreadConnections(db)
        self._threads = ThreadPoolExecutor(threads, thread_name_prefix="ledger-read")

    def read(self, query: Callable[[Queries], T]) -> T:
        return self._threads.submit(self._read, query).result()

    async def aread(self, query: Callable[[Queries], T]) -> T:
        return await asyncio.wrap_future(self._threads.submit(self._read, query))

    def _read(self, query: Callable[[Queries], T]) -> T:
        while True:
            # A kept connection may have died while idle (the database restarted): a read
            # changes nothing, so it is safe to try once more on a fresh connection.
            fresh = self._connections.fresh
            try:
                return query(Queries(self._db, self._connections.get()))
            except Exception as exc:
                error = classify(exc)
                if not isinstance(error, LedgerUnavailable):
                    if error is None or error is exc:
                        raise
                    raise error from exc
                self._connections.drop()
                if fresh or not is_broken(exc):
                    raise error from exc

    def close(self) -> None:
        self._threads.shutdown(wait=True)
        self._connections.close()
