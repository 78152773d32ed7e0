"""Commands (users, keys, grants) are few: each runs alone, in its own transaction, on a
thread with a connection of its own. There is no group commit to gain from.

A command prepares its events from fresh state (``ledger.commands``) and they are saved
with their effects on the index tables (``ledger.recorders``). When the save collides
(a unique name taken meanwhile, a concurrent change to the same aggregate), the command
is prepared again, so every check is re-evaluated; for an idempotent command (a grant
with a reference) a collision means it was done already. Errors are judged as the group
commit judges them (``ledger.failures``).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID

from ledger.commands import Command
from ledger.connections import ThreadConnections
from ledger.database import Database
from ledger.errors import Conflict, LedgerUnavailable
from ledger.failures import classify, is_collision
from ledger.queries import Queries

MAX_ATTEMPTS = 5


class CommandRunner:
    def __init__(self, db: Database, app: Any, threads: int = 2) -> None:
        self._db = db
        self._app = app
        self._connections = ThreadConnections(db)
        self._threads = ThreadPoolExecutor(threads, thread_name_prefix="ledger-commands")

    # The context a command prepares in (``ledger.commands.Context``).
    @property
    def queries(self) -> Queries:
        return Queries(self._db, self._connections.get())

    def get(self, aggregate_id: UUID) -> Any:
        return self._app.repository.get(aggregate_id)

    def run(self, command: Command) -> Any:
        """Run ``command`` on the calling thread; its result."""
        for _ in range(MAX_ATTEMPTS):
            try:
                prepared = command.prepare(self)
                if prepared.events:
                    self._app.events.put(prepared.events, ledger_events=prepared.events)
                return prepared.result
            except Exception as exc:
                if not is_collision(exc):
                    error = classify(exc)
                    if isinstance(error, LedgerUnavailable):
                        self._connections.drop()
                    if error is None or error is exc:
                        raise
                    raise error from exc
                if command.idempotent:
                    return False
        raise Conflict("the change kept colliding with concurrent changes")

    async def arun(self, command: Command) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._threads, self.run, command)

    def close(self) -> None:
        self._threads.shutdown(wait=True)
        self._connections.close()
