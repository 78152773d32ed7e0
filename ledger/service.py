"""``Ledger``: the one object the rest of TokenSea uses to reach the ledger.

It owns the eventsourcing application, two group-commit writers and a small pool of
readers, each on its own thread, so that callers never block on the database from an
event loop:

- the *event writer* appends events (charges, grants, users, keys) and folds them into
  the index tables, many commands per durable transaction;
- the *hold writer* admits requests (``ledger.admission``), many per transaction;
- *readers* answer queries, one connection per thread;
- on PostgreSQL, the event loop that serves model calls admits their holds and appends
  their charges itself, on two connections of its own (``ledger.loop_writes``);
- in a serving process, a *maintenance* thread heartbeats and recovers the holds of
  dead processes (``ledger.recovery``).

Every method exists in a blocking form (for the CLI and tests) and an ``a``-prefixed
awaitable form (for the Sanic edge).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar
from uuid import UUID

import psycopg
from eventsourcing.persistence import DataError, IntegrityError, PersistenceError

from domain.charges import Charge
from ledger import commands
from ledger.admission import Hold, admit_batch
from ledger.application import LedgerApplication
from ledger.batching import BatchWorker, Pending
from ledger.database import Database
from ledger.effects import Effects
from ledger.errors import Conflict, InvalidValue, LedgerError, LedgerUnavailable
from ledger.log import EventLog
from ledger.loop_writes import LoopWrites
from ledger.queries import Queries
from ledger.recovery import Recovery
from ledger.schema import create_tables, creating, vacuum_churning_tables

log = logging.getLogger(__name__)
T = TypeVar("T")

_MAX_ATTEMPTS = 5
# When a serving process vacuums the churning tables (ledger.schema.vacuum_churning_tables):
# after this many of its own holds (about every 2 s at full load), or, when fewer come,
# every VACUUM_AFTER_SECONDS; a process that admitted nothing since does not.
VACUUM_AFTER_HOLDS = 2000
VACUUM_AFTER_SECONDS = 30.0
_UNAVAILABLE = (
    psycopg.OperationalError,
    psycopg.InterfaceError,
    sqlite3.OperationalError,
    PersistenceError,
    OSError,
)
_CONFLICT = (IntegrityError, psycopg.IntegrityError, sqlite3.IntegrityError)
_INVALID = (DataError, psycopg.DataError, sqlite3.DataError)


def _failure(exc: BaseException) -> LedgerError:
    """What a database error means to the caller: a value it cannot store (the caller's
    mistake, e.g. a NUL character in a name), or the database being out of reach."""
    if isinstance(exc, _INVALID):
        return InvalidValue(str(exc))
    return LedgerUnavailable(str(exc))


class Ledger:
    def __init__(
        self,
        db: Database,
        *,
        serving: bool = False,
        readers: int = 4,
        stale_after: float = 3.0,
        grace: float = 5.0,
        on_batch: Callable[[str, int, float], None] | None = None,
        vacuum_after_holds: int = VACUUM_AFTER_HOLDS,
    ) -> None:
        self.db = db
        self.instance_id = uuid.uuid4().hex
        try:
            with creating(db):
                create_tables(db)
                self.app = LedgerApplication(env=db.eventsourcing_env())
        except _UNAVAILABLE as exc:
            raise LedgerUnavailable(f"cannot open the ledger at {db.redacted()}: {exc}") from exc
        self.app.recorder.effects = Effects(db)  # type: ignore[attr-defined]
        self.log = EventLog(db, self.app)
        self._local = threading.local()
        self._readers = ThreadPoolExecutor(readers, thread_name_prefix="ledger-read")
        self._on_batch = on_batch
        self._events = BatchWorker[commands.Command]("ledger-events", self._commit_commands, on_batch=self._report("events"))
        self._holds = BatchWorker[Hold]("ledger-holds", self._commit_holds, on_batch=self._report("holds"))
        self._loop_writes: LoopWrites | None = None
        self._stop = threading.Event()
        self._vacuum_after_holds = vacuum_after_holds
        self._holds_since_vacuum = 0  # counted by whoever admits (writer or loop), read by maintenance
        # Holds whose admission failed with the database: they may have landed all the
        # same, with nobody left to settle them. Maintenance releases those that exist.
        self._unsure_holds: set[str] = set()
        self._unsure_lock = threading.Lock()
        self._maintenance: threading.Thread | None = None
        self.recovery = Recovery(db, self.instance_id, stale_after=stale_after, grace=grace)
        if serving:
            self.recovery.register(self._connection(), socket.gethostname(), os.getpid())
            self._maintenance = threading.Thread(target=self._maintain, name="ledger-maintenance", daemon=True)
            self._maintenance.start()

    def close(self) -> None:
        self._stop.set()
        if self._maintenance is not None:
            self._maintenance.join(5)
        if self._loop_writes is not None:
            self._loop_writes.abandon()  # closed already by ``aclose`` unless the loop went away first
        self._holds.stop()
        self._events.stop()
        self._readers.shutdown(wait=True)
        self.app.close()

    # -- commands ------------------------------------------------------------------------

    def submit(self, command: commands.Command) -> Future[Any]:
        return self._events.submit(command)

    def run(self, command: commands.Command) -> Any:
        return self.submit(command).result()

    async def arun(self, command: commands.Command) -> Any:
        return await self._events.submit_async(command)

    def settle(self, charge: Charge.TokensConsumed) -> bool:
        """Record a request's charge; False if it had been recorded already."""
        return bool(self.run(commands.Settle.of(charge)))

    async def asettle(self, charge: Charge.TokensConsumed) -> bool:
        writes = self._writes_of_this_loop()
        if writes is None:
            return bool(await self.arun(commands.Settle.of(charge)))
        return await writes.settle(charge)

    def admit(self, hold: Hold) -> int | None:
        """Reserve ``hold`` or raise ``Refused``; the output limit chosen when
        ``hold.output`` is set (``ledger.admission.OutputBound``), else None."""
        limit: int | None = self._holds.submit(hold).result()
        return limit

    async def aadmit(self, hold: Hold) -> int | None:
        writes = self._writes_of_this_loop()
        if writes is None:
            limit: int | None = await self._holds.submit_async(hold)
            return limit
        self._holds_since_vacuum += 1
        return await writes.admit(hold)

    async def aclose(self) -> None:
        """``close`` for the event loop that used the ledger: its lanes finish first."""
        if self._loop_writes is not None:
            await self._loop_writes.aclose()
        await asyncio.to_thread(self.close)

    # -- reads -----------------------------------------------------------------------------

    def read(self, query: Callable[[Queries], T]) -> T:
        return self._readers.submit(self._read, query).result()

    async def aread(self, query: Callable[[Queries], T]) -> T:
        return await asyncio.wrap_future(self._readers.submit(self._read, query))

    def _read(self, query: Callable[[Queries], T]) -> T:
        while True:
            # A kept connection may have died while idle (the database restarted): a read
            # changes nothing, so it is safe to try once more on a fresh connection.
            fresh = getattr(self._local, "conn", None) is None
            try:
                return query(Queries(self.db, self._connection()))
            except _UNAVAILABLE as exc:
                self._drop_connection()
                if fresh:
                    raise _failure(exc) from exc

    def get(self, aggregate_id: UUID) -> Any:
        return self.app.repository.get(aggregate_id)

    # -- connections (one per thread) ------------------------------------------------------

    def _connection(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = self.db.connect()
            except _UNAVAILABLE as exc:
                raise LedgerUnavailable(f"cannot connect to the database: {exc}") from exc
            self._local.conn = conn
        return conn

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with contextlib.suppress(Exception):  # it is being discarded anyway
                conn.close()

    # -- the writers -----------------------------------------------------------------------

    @property
    def queries(self) -> Queries:
        """Queries on the calling thread's connection (used by commands as they prepare)."""
        return Queries(self.db, self._connection())

    def _commit_commands(self, batch: list[Pending[commands.Command]]) -> None:
        prepared: list[tuple[Pending[commands.Command], commands.Prepared]] = []
        for pending in batch:
            outcome = self._prepare(pending)
            if outcome is not None:
                prepared.append((pending, outcome))
        if not prepared:
            return
        try:
            self._save([event for _, p in prepared for event in p.events])
        except _CONFLICT:
            if len(prepared) == 1:
                self._run_alone(prepared[0][0], first_attempt_failed=True)
            else:
                for pending, _ in prepared:
                    self._run_alone(pending)
            return
        except _UNAVAILABLE as exc:
            self._drop_connection()
            for pending, _ in prepared:
                pending.set_exception(_failure(exc))
            return
        for pending, outcome in prepared:
            pending.set_result(outcome.result)

    def _prepare(self, pending: Pending[commands.Command]) -> commands.Prepared | None:
        try:
            return pending.job.prepare(self)
        except _UNAVAILABLE as exc:
            self._drop_connection()
            pending.set_exception(_failure(exc))
        except Exception as exc:  # noqa: BLE001 - domain and ledger errors go to the caller
            pending.set_exception(exc)
        return None

    def _run_alone(self, pending: Pending[commands.Command], *, first_attempt_failed: bool = False) -> None:
        """Save one command by itself, preparing it afresh after each collision."""
        if first_attempt_failed and pending.job.idempotent:
            pending.set_result(False)
            return
        for _ in range(_MAX_ATTEMPTS):
            outcome = self._prepare(pending)
            if outcome is None:
                return
            try:
                self._save(outcome.events)
            except _CONFLICT:
                if pending.job.idempotent:
                    pending.set_result(False)
                    return
                continue
            except _UNAVAILABLE as exc:
                self._drop_connection()
                pending.set_exception(_failure(exc))
                return
            pending.set_result(outcome.result)
            return
        pending.set_exception(Conflict("the change kept colliding with concurrent changes"))

    def _save(self, events: list[Any]) -> None:
        if events:
            self.app.events.put(events, ledger_events=events)

    def _commit_holds(self, batch: list[Pending[Hold]]) -> None:
        self._holds_since_vacuum += len(batch)
        try:
            admit_batch(self.db, self._connection(), batch)
        except _CONFLICT:
            if len(batch) == 1:
                batch[0].set_exception(Conflict("request id already admitted"))
                return
            for pending in batch:
                self._commit_holds([pending])
        except LedgerError as exc:
            for pending in batch:
                pending.set_exception(exc)
        except _UNAVAILABLE as exc:
            self._drop_connection()
            self._holds_failed(exc, batch)

    def _holds_failed(self, exc: BaseException, batch: list[Pending[Hold]]) -> None:
        """A batch of holds failed with the database: its callers are refused service,
        and maintenance releases any of the holds that landed regardless."""
        if isinstance(exc, _UNAVAILABLE):
            with self._unsure_lock:  # not those decided already: an admitted hold is live
                self._unsure_holds.update(pending.job.facts.request_id for pending in batch if not pending.done)
        self._fail_batch(exc, batch)

    def _release_unsure_holds(self, conn: Any) -> None:
        with self._unsure_lock:
            unsure = list(self._unsure_holds)
        for start in range(0, len(unsure), 500):
            chunk = unsure[start : start + 500]
            for charge in self.recovery.abandoned_charges(conn, chunk):
                if self.settle(charge):
                    log.warning("released request %s, admitted as the database failed, as interrupted", charge.request_id)
            with self._unsure_lock:
                self._unsure_holds.difference_update(chunk)

    # -- the event loop's lanes (PostgreSQL) -----------------------------------------------

    def _writes_of_this_loop(self) -> LoopWrites | None:
        """The running loop's lanes (PostgreSQL): made by the first loop that asks; another
        loop (a second one in a test, say) uses the writer threads."""
        if not self.db.is_postgres:
            return None
        if self._loop_writes is None:
            self._loop_writes = LoopWrites(self.db, self.app, holds_failed=self._holds_failed, fail=self._fail_batch,
                                           report=self._report)
        if self._loop_writes.loop is not asyncio.get_running_loop():
            return None
        return self._loop_writes

    def _report(self, lane: str) -> Callable[[int, float], None] | None:
        """``on_batch`` for one lane's batches (the holds, or the events)."""
        on_batch = self._on_batch
        return None if on_batch is None else lambda size, seconds: on_batch(lane, size, seconds)

    @staticmethod
    def _fail_batch(exc: BaseException, batch: list[Pending[Any]]) -> None:
        for pending in batch:
            pending.set_exception(_failure(exc) if isinstance(exc, (*_UNAVAILABLE, *_INVALID)) else exc)

    # -- maintenance -----------------------------------------------------------------------

    def _maintain(self) -> None:
        last_cleanup = last_vacuum = 0.0
        while not self._stop.wait(1.0):
            try:
                conn = self._connection()
                self.recovery.heartbeat(conn)
                for charge in self.recovery.orphaned_charges(conn):
                    if self.settle(charge):
                        log.warning("recovered request %s as interrupted", charge.request_id)
                self._release_unsure_holds(conn)
                churned = self._holds_since_vacuum
                if churned >= self._vacuum_after_holds or (
                    churned and time.monotonic() - last_vacuum > VACUUM_AFTER_SECONDS
                ):
                    self._holds_since_vacuum = 0
                    vacuum_churning_tables(self.db, conn)
                    last_vacuum = time.monotonic()
                if time.monotonic() - last_cleanup > 60:
                    self.recovery.forget_finished(conn)
                    last_cleanup = time.monotonic()
            except (LedgerError, *_UNAVAILABLE) as exc:
                self._drop_connection()
                log.warning("ledger maintenance: %s", exc)
            except Exception:
                log.exception("ledger maintenance failed")

