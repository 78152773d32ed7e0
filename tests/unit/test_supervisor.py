"""The supervisor's decisions, on a stand-in for Sanic's worker manager."""

from __future__ import annotations

from dataclasses import dataclass, field

from sanic.worker.constants import ProcessState

from edge.supervisor import Supervisor


@dataclass
class FakeProcess:
    name: str
    pid: int
    alive: bool = True
    state: ProcessState = ProcessState.ACKED
    exitcode: int | None = None

    def is_alive(self) -> bool:
        return self.alive

    def die(self) -> None:
        self.alive, self.state, self.exitcode = False, ProcessState.FAILED, -9

    def replaced(self, pid: int) -> None:
        self.pid, self.alive, self.state, self.exitcode = pid, True, ProcessState.ACKED, None


@dataclass
class FakePipe:
    sent: list[str] = field(default_factory=list)

    def send(self, message: str) -> None:
        self.sent.append(message)


@dataclass
class FakeManager:
    processes: list[FakeProcess]
    monitor_publisher: FakePipe = field(default_factory=FakePipe)
    _shutting_down: bool = False


def test_a_dead_process_is_restarted_once_and_quick_deaths_wait_longer() -> None:
    worker = FakeProcess("Sanic-Server-0-0", 100)
    manager = FakeManager([worker, FakeProcess("Sanic-Server-1-0", 101)])
    supervisor = Supervisor(manager)
    supervisor.check(now=1000.0)
    assert manager.monitor_publisher.sent == []
    worker.die()
    supervisor.check(now=1000.0)
    supervisor.check(now=1000.5)  # still dead until the manager restarts it: asked once
    assert manager.monitor_publisher.sent == ["Sanic-Server-0-0"]
    worker.replaced(102)
    worker.die()  # dies again right after its restart: a pause of 1 s first
    supervisor.check(now=1002.0)
    assert manager.monitor_publisher.sent == ["Sanic-Server-0-0"]
    supervisor.check(now=1003.1)
    assert manager.monitor_publisher.sent == ["Sanic-Server-0-0"] * 2
    worker.replaced(103)
    worker.die()  # long after: no pause
    supervisor.check(now=2000.0)
    assert manager.monitor_publisher.sent == ["Sanic-Server-0-0"] * 3
    supervisor.stop.set()  # ends the threads waiting to log the replacements


def test_nothing_is_restarted_while_shutting_down() -> None:
    worker = FakeProcess("Sanic-Server-0-0", 100)
    manager = FakeManager([worker], _shutting_down=True)
    worker.state, worker.alive = ProcessState.COMPLETED, False
    Supervisor(manager).check(now=1.0)
    worker.state = ProcessState.TERMINATED
    manager._shutting_down = False
    Supervisor(manager).check(now=1.0)  # terminated on purpose: not a death
    assert manager.monitor_publisher.sent == []
