"""Where each caller's holds and charges go: always through ``ledger.group_commit``.

The event loop that serves model calls (the first loop to ask) writes them itself, on
connections of its own: no thread to wake, no second wake-up to deliver the outcome.
Every other caller (the CLI, recovery, tests, a second loop) goes through the ledger's
own event loop, on a thread it starts when first needed. Both run the same engine with
the same drivers, so the rules for lost answers, collisions and errors hold for all.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

from domain.charges import Charge
from ledger.admission import Hold
from ledger.database import Database
from ledger.group_commit import GroupCommit
from ledger.postgres_writes import PostgresCharges, PostgresHolds
from ledger.sqlite_writes import SQLiteCharges, SQLiteHolds

T = TypeVar("T")
OnBatch = Callable[[str, int, float], None]


@dataclass
class _Engines:
    holds: GroupCommit[Hold]
    charges: GroupCommit[Charge.TokensConsumed]

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self.holds.loop

    def abandon(self) -> None:
        self.holds.abandon()
        self.charges.abandon()

    async def aclose(self) -> None:
        await self.holds.aclose()
        await self.charges.aclose()


class Writes:
    """``admitted(n)`` counts admitted holds; ``unsure(request_ids)`` hears of holds whose
    admission failed with the database (``ledger.jobs``)."""

    def __init__(
        self,
        db: Database,
        app: Any,
        *,
        admitted: Callable[[int], None],
        unsure: Callable[[list[str]], None],
        on_batch: OnBatch | None = None,
    ) -> None:
        self._db = db
        self._app = app
        self._admitted = admitted
        self._unsure = unsure
        self._on_batch = on_batch
        self._served: _Engines | None = None
        self._own_loop: asyncio.AbstractEventLoop | None = None
        self._own_thread: threading.Thread | None = None
        self._own: _Engines | None = None
        self._lock = threading.Lock()

    # -- the caller's API --------------------------------------------------------------

    async def aadmit(self, hold: Hold) -> int | None:
        engines = self._engines_here()
        if engines is None:
            return await asyncio.wrap_future(self._elsewhere(lambda e: e.holds.submit(hold)))
        limit: int | None = await engines.holds.submit(hold)
        return limit

    async def asettle(self, charge: Charge.TokensConsumed) -> bool:
        engines = self._engines_here()
        if engines is None:
            return bool(await asyncio.wrap_future(self._elsewhere(lambda e: e.charges.submit(charge))))
        return bool(await engines.charges.submit(charge))

    def admit(self, hold: Hold) -> int | None:
        limit: int | None = self._elsewhere(lambda e: e.holds.submit(hold)).result()
        return limit

    def settle(self, charge: Charge.TokensConsumed) -> bool:
        return bool(self._elsewhere(lambda e: e.charges.submit(charge)).result())

    # -- engines -----------------------------------------------------------------------

    def _engines(self) -> _Engines:
        """New engines on the running loop."""
        if self._db.is_postgres:
            holds: Any = PostgresHolds(self._db, admitted=self._admitted, unsure=self._unsure)
            charges: Any = PostgresCharges(self._db, self._app)
        else:
            holds = SQLiteHolds(self._db, admitted=self._admitted, unsure=self._unsure)
            charges = SQLiteCharges(self._db, self._app)
        return _Engines(GroupCommit(holds, on_batch=self._on_batch), GroupCommit(charges, on_batch=self._on_batch))

    def _engines_here(self) -> _Engines | None:
        """The running loop's engines if it is the serving loop (the first to ask)."""
        loop = asyncio.get_running_loop()
        if self._served is None and loop is not self._own_loop:
            self._served = self._engines()
        return self._served if self._served is not None and self._served.loop is loop else None

    def _elsewhere(self, submit: Callable[[_Engines], asyncio.Future[T]]) -> Future[T]:
        """Run ``submit`` on the ledger's own loop; its outcome, for any thread."""
        loop = self._start_own_loop()

        async def run() -> T:
            if self._own is None:
                self._own = self._engines()
            return await submit(self._own)

        return asyncio.run_coroutine_threadsafe(run(), loop)

    def _start_own_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._own_loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="ledger-writes", daemon=True)
                thread.start()
                self._own_loop, self._own_thread = loop, thread
            return self._own_loop

    # -- closing -----------------------------------------------------------------------

    async def aclose(self) -> None:
        """On the serving loop: finish its queued jobs and close its connections."""
        if self._served is not None and self._served.loop is asyncio.get_running_loop():
            served, self._served = self._served, None
            await served.aclose()

    def close(self) -> None:
        """Finish and close the ledger's own loop; abandon a serving loop's connections
        if that loop went away without ``aclose``."""
        if self._served is not None:
            self._served.abandon()
            self._served = None
        loop, thread = self._own_loop, self._own_thread
        if loop is None or thread is None:
            return
        own = self._own
        if own is not None:
            _run_on(loop, own.aclose()).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()
        self._own_loop = self._own_thread = self._own = None


def _run_on(loop: asyncio.AbstractEventLoop, work: Coroutine[Any, Any, T]) -> Future[T]:
    return asyncio.run_coroutine_threadsafe(work, loop)
