"""Group commit: the one engine that writes holds and charges, for every caller.

A ``GroupCommit`` belongs to one event loop. Callers submit jobs and await their
outcome; while one batch's statement is in flight, new jobs queue and form the next
batch, so an idle ledger writes a lone job at once and a busy one shares each commit
among many requests. What differs between holds and charges, and between PostgreSQL and
SQLite, is a ``Driver``; everything else is decided here, once:

- **A lost answer.** When the connection fails under a batch's statement, the server may
  have run it all the same. The batch is sent once more on a fresh connection, after
  ``Driver.landed`` has resolved the jobs it finds already written; both statements are
  safe to resend, because a request id is admitted once and charged once.
- **A collision** (a request id taken) fails a batch as a whole, so it is sent again one
  job at a time. A lone job that collides on a resend may be the first attempt, which
  committed after the check: ``landed`` is asked again before ``Driver.collided`` gives
  the collision its meaning (a hold: a conflict; a charge: charged already).
- **A job the ledger cannot take** (a value it cannot store, a bug) fails alone: its batch
  is split, and the other requests in it are written. One user's bad input never fails
  another user's call.
- **Errors** are judged by ``ledger.failures``: only an unreachable database is
  ``LedgerUnavailable`` (the caller fails closed with a 503); anything unexplained is
  logged and reaches the caller as it is.
- **Metrics.** ``on_batch`` may fail: it is logged, and the jobs queued behind it go on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from ledger.errors import LedgerUnavailable
from ledger.failures import classify, is_broken, is_collision

log = logging.getLogger(__name__)

J = TypeVar("J")
_UNSET: Any = object()


class Pending(Generic[J]):
    """A queued job and, once decided, its outcome (delivered to the waiter afterwards)."""

    __slots__ = ("_error", "_result", "future", "job")

    def __init__(self, job: J, future: asyncio.Future[Any] | None = None) -> None:
        self.job = job
        self.future = future
        self._result: Any = _UNSET
        self._error: BaseException | None = None

    @property
    def done(self) -> bool:
        return self._result is not _UNSET or self._error is not None

    def set_result(self, result: Any) -> None:
        if not self.done:
            self._result = result

    def set_exception(self, error: BaseException) -> None:
        if not self.done:
            self._error = error

    def outcome(self) -> Any:
        """The result, or raise the error (for callers that decide batches themselves)."""
        if self._error is not None:
            raise self._error
        return self._result

    def deliver(self) -> None:
        future = self.future
        if future is None or future.done():  # nobody waits, or the waiter was cancelled
            return
        if self._error is not None:
            future.set_exception(self._error)
        else:
            future.set_result(self._result)


class Driver(ABC, Generic[J]):
    """How one kind of job (holds, charges) reaches one backend."""

    #: the metric label of its batches
    lane: str

    @abstractmethod
    async def connect(self) -> Any:
        """A fresh connection (or whatever ``execute`` runs on)."""

    @abstractmethod
    async def execute(self, conn: Any, batch: list[Pending[J]]) -> None:
        """Write ``batch`` in one transaction and resolve each job; raise if it failed."""

    @abstractmethod
    async def landed(self, conn: Any, batch: list[Pending[J]]) -> None:
        """Resolve the jobs of ``batch`` that an attempt whose answer was lost wrote."""

    @abstractmethod
    def collided(self, pending: Pending[J]) -> None:
        """Resolve a lone job whose key was taken (and not by an attempt of its own)."""

    def failed(self, error: BaseException, batch: list[Pending[J]]) -> None:
        """Told of jobs about to fail with ``error`` (holds remember the unsure ones)."""

    @abstractmethod
    def abandon(self, conn: Any) -> None:
        """Close ``conn`` without its event loop (after an error, or when the loop is gone)."""

    @abstractmethod
    async def close(self, conn: Any) -> None:
        """Close ``conn`` cleanly."""


class GroupCommit(Generic[J]):
    """Batches of one driver's jobs, written in turn on one connection of the running loop."""

    def __init__(
        self, driver: Driver[J], *, max_batch: int = 500, on_batch: Callable[[str, int, float], None] | None = None
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self._driver = driver
        self._max_batch = max_batch
        self._on_batch = on_batch
        self._queue: list[Pending[J]] = []
        self._conn: Any = None
        self._drainer: asyncio.Task[None] | None = None
        self._closed = False

    def submit(self, job: J) -> asyncio.Future[Any]:
        """The job's outcome, once its batch is written (call on this core's loop)."""
        if self._closed:
            raise RuntimeError(f"the {self._driver.lane} writer is closed")
        future = self.loop.create_future()
        self._queue.append(Pending(job, future))
        if self._drainer is None:
            self._drainer = self.loop.create_task(self._drain(), name=f"ledger-{self._driver.lane}")
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
                self._conn = await self._driver.connect()
            try:
                await self._send(batch, resent=False)
            except Exception as exc:
                if not is_broken(exc):
                    raise
                self.abandon()
                self._conn = await self._driver.connect()
                await self._driver.landed(self._conn, self._unresolved(batch))
                if unresolved := self._unresolved(batch):
                    await self._send(unresolved, resent=True)
        except asyncio.CancelledError:
            self.abandon()
            for pending in batch:
                pending.set_exception(RuntimeError(f"the {self._driver.lane} writer was stopped"))
            raise
        except Exception as exc:  # noqa: BLE001 - every waiter must hear about it
            self.abandon()
            self._fail(self._unresolved(batch), exc)
        finally:
            for pending in batch:
                pending.set_exception(RuntimeError("job left unresolved"))  # no-op when resolved
                pending.deliver()
        self._report(len(batch), time.perf_counter() - started)

    async def _send(self, batch: list[Pending[J]], *, resent: bool) -> None:
        try:
            await self._driver.execute(self._conn, batch)
        except Exception as exc:
            if is_broken(exc) or _unavailable(exc):
                raise  # the whole batch's fate is unknown or shared: decided above
            if len(batch) > 1:  # some job collided or cannot be taken: find which, alone
                for pending in batch:
                    if not pending.done:
                        await self._send([pending], resent=resent)
                return
            if not is_collision(exc):
                self._fail(batch, exc)
                return
            if resent:  # the first attempt may have committed after the check
                await self._driver.landed(self._conn, batch)
            if not batch[0].done:
                self._driver.collided(batch[0])

    def _fail(self, batch: list[Pending[J]], exc: BaseException) -> None:
        error = classify(exc)
        if error is None:
            log.error("ledger %s writer: a batch of %d failed", self._driver.lane, len(batch), exc_info=exc)
        self._driver.failed(error or exc, batch)
        for pending in batch:
            pending.set_exception(error or exc)

    def _report(self, size: int, seconds: float) -> None:
        if self._on_batch is None:
            return
        try:
            self._on_batch(self._driver.lane, size, seconds)
        except Exception:  # a metric must not stop the writer: jobs queued behind it would wait
            log.exception("ledger %s writer: reporting a batch failed", self._driver.lane)

    @staticmethod
    def _unresolved(batch: list[Pending[J]]) -> list[Pending[J]]:
        return [pending for pending in batch if not pending.done]

    def abandon(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._driver.abandon(conn)

    async def aclose(self) -> None:
        """Finish the queued jobs, then close the connection."""
        self._closed = True
        if self._drainer is not None:
            await asyncio.shield(self._drainer)
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await self._driver.close(conn)


def _unavailable(exc: BaseException) -> bool:
    return isinstance(classify(exc), LedgerUnavailable)
