"""Group commit on the event loop: the two statements every model call makes, on PostgreSQL.

Every other write goes through a writer thread (``ledger.batching``). A batch of holds
(``ts_admit``) and a batch of charges (``ts_append_charges``) are each one call, so an
event loop can make them itself on an asynchronous connection of its own: no thread to
wake, no interpreter lock to hand over, no second wake-up to deliver the outcome. The
group commit is the same: while one batch's call is in flight, new jobs queue and form
the next; a lone job goes out at the next turn of the loop.

A lane belongs to the loop that first used it. It opens its connection on demand and
drops it after any database error, so the next batch reconnects: service resumes by
itself when the database returns. A batch whose statement fails with the connection (the
database restarted, or the answer was lost on the way) is sent once more on a fresh one.
The first attempt may have landed: ``landed`` resolves the jobs it finds already written
before the resend, and a collision on the resend means the same. Both statements are safe
to resend, because a request id is admitted once and charged once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import psycopg

from ledger.batching import Pending

log = logging.getLogger(__name__)
J = TypeVar("J")
_BROKEN = (psycopg.OperationalError, psycopg.InterfaceError, OSError)


class AsyncLane(Generic[J]):
    """``execute`` sends one batch as one statement and resolves each job; a unique
    violation means some job collided, so the batch is sent again one job at a time and
    ``collided`` resolves a lone job that still collides (``resent``: on the resend
    after a lost connection). ``landed`` resolves, before that resend, the jobs the lost
    attempt wrote. ``fail`` resolves a batch after any other error."""

    def __init__(
        self,
        name: str,
        connect: Callable[[], Awaitable[Any]],
        execute: Callable[[Any, list[Pending[J]]], Awaitable[None]],
        collided: Callable[[Pending[J], bool], None],
        fail: Callable[[BaseException, list[Pending[J]]], None],
        *,
        landed: Callable[[Any, list[Pending[J]]], Awaitable[None]] | None = None,
        max_batch: int = 500,
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self._name = name
        self._connect = connect
        self._execute = execute
        self._collided = collided
        self._fail = fail
        self._landed = landed
        self._max_batch = max_batch
        self._on_batch = on_batch
        self._queue: list[Pending[J]] = []
        self._conn: Any = None
        self._drainer: asyncio.Task[None] | None = None
        self._closed = False

    def submit(self, job: J) -> asyncio.Future[Any]:
        if self._closed:
            raise RuntimeError(f"{self._name} is closed")
        future = self.loop.create_future()
        self._queue.append(Pending(job, future, None))
        if self._drainer is None:
            self._drainer = self.loop.create_task(self._drain(), name=self._name)
        return future

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                await self._run(batch)
        finally:
            self._drainer = None

    async def _run(self, batch: list[Pending[J]]) -> None:
        started = time.perf_counter()
        try:
            if self._conn is None:
                self._conn = await self._connect()
            try:
                await self._send(batch, resent=False)
            except _BROKEN:
                self.abandon()
                self._conn = await self._connect()
                if self._landed is not None:
                    await self._landed(self._conn, [pending for pending in batch if not pending.done])
                if unresolved := [pending for pending in batch if not pending.done]:
                    await self._send(unresolved, resent=True)
        except asyncio.CancelledError:
            self.abandon()
            for pending in batch:
                pending.set_exception(RuntimeError(f"{self._name} was stopped"))
            raise
        except Exception as exc:  # noqa: BLE001 - every waiter must hear about it
            self.abandon()
            self._fail(exc, batch)
        finally:
            for pending in batch:
                pending.set_exception(RuntimeError("job left unresolved"))  # no-op when resolved
                pending.deliver()
        if self._on_batch is not None:
            try:
                self._on_batch(len(batch), time.perf_counter() - started)
            except Exception:  # a metric must not stop the lane: jobs queued behind it would wait
                log.exception("%s: reporting a batch failed", self._name)

    async def _send(self, batch: list[Pending[J]], *, resent: bool) -> None:
        try:
            await self._execute(self._conn, batch)
        except psycopg.IntegrityError:
            if len(batch) == 1:
                self._collided(batch[0], resent)
                return
            for pending in batch:
                await self._send([pending], resent=resent)

    def abandon(self) -> None:
        """Close the connection without the loop (after an error, or when the loop is gone)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.pgconn.finish()

    async def aclose(self) -> None:
        """Finish the queued jobs, then close the connection."""
        self._closed = True
        if self._drainer is not None:
            await asyncio.shield(self._drainer)
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await conn.close()
