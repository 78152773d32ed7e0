"""The group commit's drivers for SQLite: the same jobs, written off the event loop.

SQLite's driver has no asynchronous mode, so each driver owns one thread and one
connection, and runs every batch there: holds under the database's write lock by
``ledger.sqlite_admission`` (the rule ``ts_admit`` applies on
PostgreSQL), charges through the event store, whose recorder releases their holds into
the ``ts_settled`` inbox in the same transaction (``ledger.effects``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

from domain.charges import Charge
from ledger.admission import Hold
from ledger.database import Database
from ledger.group_commit import Pending
from ledger.jobs import ChargeDriver, HoldDriver
from ledger.sqlite_admission import admit_under_write_lock

T = TypeVar("T")


@dataclass
class _Worker:
    """A connection and the one thread that uses it."""

    thread: ThreadPoolExecutor
    conn: Any

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.thread, work, *args)


class _OnItsThread:
    db: Database
    lane: str

    async def connect(self) -> _Worker:
        thread = ThreadPoolExecutor(1, thread_name_prefix=f"ledger-{self.lane}")
        conn = await asyncio.get_running_loop().run_in_executor(thread, self.db.connect)
        return _Worker(thread, conn)

    def abandon(self, conn: _Worker) -> None:
        with contextlib.suppress(Exception):  # it is being discarded anyway
            conn.conn.close()
        conn.thread.shutdown(wait=False)

    async def close(self, conn: _Worker) -> None:
        await conn.run(conn.conn.close)
        conn.thread.shutdown(wait=True)

    async def _select(self, conn: _Worker, statement: str, keys: list[Any]) -> list[Any]:
        def select() -> list[Any]:
            cur = conn.conn.cursor()
            try:
                cur.execute(self.db.sql(statement.format(self.db.in_list(len(keys)))), keys)
                return list(cur.fetchall())
            finally:
                cur.close()

        return await conn.run(select)


class SQLiteHolds(_OnItsThread, HoldDriver):
    def __init__(self, db: Database, *, admitted: Callable[[int], None], unsure: Callable[[list[str]], None]) -> None:
        super().__init__(admitted=admitted, unsure=unsure)
        self.db = db

    async def execute(self, conn: _Worker, batch: list[Pending[Hold]]) -> None:
        await conn.run(admit_under_write_lock, self.db, conn.conn, batch)
        self._admitted(len(batch))

    async def held(self, conn: _Worker, request_ids: list[str]) -> dict[str, Any]:
        rows = await self._select(conn, "SELECT request_id, amount FROM ts_holds WHERE request_id IN ({})", request_ids)
        return {row["request_id"]: row["amount"] for row in rows}


class SQLiteCharges(_OnItsThread, ChargeDriver):
    def __init__(self, db: Database, app: Any) -> None:
        super().__init__(app)
        self.db = db
        self._app = app

    async def execute(self, conn: _Worker, batch: list[Pending[Charge.TokensConsumed]]) -> None:
        charges = [pending.job for pending in batch]
        await conn.run(lambda: self._app.events.put(charges, ledger_events=charges))
        for pending in batch:
            pending.set_result(True)

    async def stored(self, conn: _Worker, ids: list[UUID]) -> dict[UUID, bytes]:
        rows = await self._select(  # eventsourcing keeps SQLite's ids as hex
            conn, "SELECT originator_id, state FROM stored_events WHERE originator_id IN ({})", [i.hex for i in ids]
        )
        return {UUID(row["originator_id"]): bytes(row["state"]) for row in rows}
