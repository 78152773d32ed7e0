"""Group commit: one thread turns a queue of jobs into few, large transactions.

Callers submit jobs and wait for their outcome: blocking callers on a
``concurrent.futures.Future``, async callers on an ``asyncio.Future`` of their own loop.
The worker takes everything queued (up to ``max_batch``) and hands it to ``handle`` in
one call; while that transaction commits, new jobs queue up and form the next batch.
There is no timer: an idle ledger commits a lone job at once, a busy one amortizes each
fsync over many requests. Outcomes for an event loop are delivered with one wake-up per
batch, not one per job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

J = TypeVar("J")
_UNSET: Any = object()


class Pending(Generic[J]):
    """A queued job and, once handled, its outcome."""

    __slots__ = ("_error", "_result", "future", "job", "loop")

    def __init__(self, job: J, future: Any, loop: asyncio.AbstractEventLoop | None) -> None:
        self.job = job
        self.future = future
        self.loop = loop
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

    def deliver(self) -> None:
        """Hand the outcome to the waiter (on the waiter's loop for async waiters)."""
        if self.future.done():  # an async waiter that was cancelled
            return
        if self._error is not None:
            self.future.set_exception(self._error)
        else:
            self.future.set_result(self._result)


def _deliver_all(batch: list[Pending[Any]]) -> None:
    for pending in batch:
        pending.deliver()


class BatchWorker(Generic[J]):
    def __init__(
        self,
        name: str,
        handle: Callable[[list[Pending[J]]], None],
        *,
        max_batch: int = 500,
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        self._name = name
        self._handle = handle
        self._max_batch = max_batch
        self._on_batch = on_batch
        self._queue: deque[Pending[J]] = deque()
        self._wakeup = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: J) -> Future[Any]:
        future: Future[Any] = Future()
        self._enqueue(Pending(job, future, None))
        return future

    def submit_async(self, job: J) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._enqueue(Pending(job, future, loop))
        return future

    def _enqueue(self, pending: Pending[J]) -> None:
        with self._wakeup:
            if self._stopping:
                raise RuntimeError(f"{self._name} is stopped")
            self._queue.append(pending)
            self._wakeup.notify()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish every queued job, then stop."""
        with self._wakeup:
            self._stopping = True
            self._wakeup.notify()
        self._thread.join(timeout)

    def _take(self) -> list[Pending[J]] | None:
        with self._wakeup:
            while not self._queue and not self._stopping:
                self._wakeup.wait()
            if not self._queue:
                return None
            count = min(len(self._queue), self._max_batch)
            return [self._queue.popleft() for _ in range(count)]

    def _run(self) -> None:
        while (batch := self._take()) is not None:
            started = time.perf_counter()
            try:
                self._handle(batch)
            except BaseException as exc:  # every waiter must hear about it
                log.exception("%s: batch of %d failed", self._name, len(batch))
                for pending in batch:
                    pending.set_exception(exc)
            for pending in batch:
                pending.set_exception(RuntimeError("job left unresolved"))  # no-op when resolved
            self._dispatch(batch)
            if self._on_batch is not None:
                self._on_batch(len(batch), time.perf_counter() - started)

    @staticmethod
    def _dispatch(batch: list[Pending[J]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[Pending[J]]] = {}
        for pending in batch:
            if pending.loop is None:
                pending.deliver()
            else:
                by_loop.setdefault(pending.loop, []).append(pending)
        for loop, items in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting
                loop.call_soon_threadsafe(_deliver_all, items)
