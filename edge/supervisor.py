"""Replace a worker or the projection process that dies, and say so in the log.

Sanic 25.12's worker manager notices a dead process (its monitor marks it FAILED or
COMPLETED) but never starts it again, so a worker killed by the OOM killer or a
``kill -9`` left a deployment one worker short for good. This thread, in the main
process, asks the manager to restart such a process through the manager's own monitor
channel (the message an auto-reload sends), so the restart itself runs where Sanic runs
it. A process that keeps dying right after its start is restarted with a growing pause,
not in a tight loop. Nothing is restarted once the manager is shutting down.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sanic.worker.constants import ProcessState

log = logging.getLogger("tokensea.supervisor")

POLL_SECONDS = 0.5
QUICK_DEATH_SECONDS = 10.0  # dying sooner than this after a restart makes the next pause longer
MAX_PAUSE_SECONDS = 30.0
_FINISHED = (ProcessState.FAILED, ProcessState.COMPLETED)


@dataclass
class _History:
    restarted_at: float = 0.0
    quick_deaths: int = 0
    handled_pid: int | None = None  # the dead process already asked to be replaced
    due_at: float = 0.0


@dataclass
class Supervisor:
    manager: Any  # sanic.worker.manager.WorkerManager
    stop: threading.Event = field(default_factory=threading.Event)
    _history: dict[str, _History] = field(default_factory=dict)

    def start(self) -> None:
        threading.Thread(target=self._run, name="tokensea-supervisor", daemon=True).start()

    def _shutting_down(self) -> bool:
        return self.stop.is_set() or bool(getattr(self.manager, "_shutting_down", False))

    def _run(self) -> None:
        while not self.stop.wait(POLL_SECONDS):
            try:
                self.check()
            except Exception:  # supervision must outlive any one odd state
                log.exception("supervisor: checking the processes failed")

    def check(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        for process in list(self.manager.processes):
            if self._shutting_down():
                return
            history = self._history.setdefault(process.name, _History())
            if process.is_alive() or process.state not in _FINISHED or process.pid == history.handled_pid:
                continue
            if history.due_at == 0.0:
                quick = history.restarted_at and now - history.restarted_at < QUICK_DEATH_SECONDS
                history.quick_deaths = history.quick_deaths + 1 if quick else 0
                pause = min(2.0 ** history.quick_deaths - 1, MAX_PAUSE_SECONDS)
                history.due_at = now + pause
                log.error(
                    "process %s (pid %s) died with exit code %s; %s",
                    process.name, process.pid, process.exitcode,
                    f"starting a replacement in {pause:.0f} s" if pause else "starting a replacement",
                )
            if now < history.due_at:
                continue
            dead = process.pid
            self.manager.monitor_publisher.send(process.name)  # the manager restarts it in its own loop
            history.handled_pid, history.restarted_at, history.due_at = dead, now, 0.0
            threading.Thread(target=self._confirm, args=(process, dead), daemon=True).start()

    def _confirm(self, process: Any, dead: int | None) -> None:
        """Log the replacement's pid once it is running (or that it is not, after a while)."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not self.stop.is_set():
            if process.pid != dead and process.is_alive():
                log.warning("process %s replaced: pid %s took over from pid %s", process.name, process.pid, dead)
                return
            time.sleep(0.1)
        if not self._shutting_down():
            log.error("process %s (pid %s) was not replaced within 30 s", process.name, dead)
