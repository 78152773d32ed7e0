"""Group commit: one thread turns a queue of jobs into few, large transactions.

Callers submit jobs and get a ``concurrent.futures.Future`` each (the async edge awaits
it with ``asyncio.wrap_future``). The worker takes everything queued (up to
``max_batch``) and hands it to ``handle`` in one call; while that transaction commits,
new jobs queue up and form the next batch. There is no timer: an idle ledger commits a
lone job at once, a busy one amortizes each fsync over many requests.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

J = TypeVar("J")


@dataclass
class Pending(Generic[J]):
    job: J
    future: Future[Any] = field(default_factory=Future)


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
        pending: Pending[J] = Pending(job)
        with self._wakeup:
            if self._stopping:
                raise RuntimeError(f"{self._name} is stopped")
            self._queue.append(pending)
            self._wakeup.notify()
        return pending.future

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
            except BaseException as exc:
                log.exception("%s: batch of %d failed", self._name, len(batch))
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(exc)
            else:
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(RuntimeError("job left unresolved"))
            if self._on_batch is not None:
                self._on_batch(len(batch), time.perf_counter() - started)
