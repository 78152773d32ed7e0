"""Recovery: the holds of a process that died are settled as interrupted, once, and
a live process's holds never are, whatever the recovering host's clock says."""

from __future__ import annotations

import multiprocessing
import os
import signal
from datetime import datetime, timedelta
from decimal import Decimal
from multiprocessing.process import BaseProcess
from uuid import UUID

import pytest

from domain.charges import RequestStatus
from ledger import Database, Ledger, recovery
from ledger.replay import events, replay
from tests.gateway import wait_until
from tests.ledger import workers
from tests.ledger.helpers import new_key, register


def _another_process_holding(ledger: Ledger, database_url: str, holds: int) -> tuple[UUID, BaseProcess]:
    """A new user with a key, and a child process that has admitted ``holds`` of 2 cents
    each for them and now waits to be killed."""
    alice = register(ledger, "alice", quota="100")
    key = new_key(ledger, alice)
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    child = context.Process(target=workers.admit_then_die, args=(database_url, str(alice), str(key), holds, ready))
    child.start()
    if not ready.wait(60):
        child.kill()
        child.join()
        pytest.fail("the child process never admitted its holds")
    return alice, child


def test_recovery_settles_a_dead_process_holds_once(database_url: str) -> None:
    """Two live processes race to recover a dead one's holds: each is settled once."""
    watcher = Ledger(Database.from_url(database_url), serving=True, stale_after=1.0, grace=1.0)
    alice, child = _another_process_holding(watcher, database_url, 3)
    second = Ledger(Database.from_url(database_url), serving=True, stale_after=1.0, grace=1.0)
    assert watcher.read(lambda q: q.user_by_id(alice))["held"] == Decimal(6)
    os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]
    child.join()
    wait_until(lambda: not watcher.read(lambda q: q.holds()), timeout=30, interval=0.2)
    second.close()
    user = watcher.read(lambda q: q.user_by_id(alice))
    assert (user["used"], user["held"]) == (Decimal(0), Decimal(0))
    totals = replay(watcher.app)
    assert totals.charged_requests == {"doomed-0", "doomed-1", "doomed-2"}
    assert totals.duplicate_charges == []
    statuses = {event.status for _, event in events(watcher.app) if hasattr(event, "request_id")}
    assert statuses == {RequestStatus.INTERRUPTED.value}
    watcher.close()


def test_a_host_whose_clock_runs_ahead_takes_no_live_process_for_dead(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Heartbeats are judged by the database's clock: a recovering host ten seconds ahead
    of the serving one must not settle the live process's holds as interrupted."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite's processes share one host, and its clock")
    ledger = Ledger(Database.from_url(database_url))
    _, child = _another_process_holding(ledger, database_url, 2)
    try:
        class Ahead(datetime):
            @classmethod
            def now(cls, tz: object = None) -> Ahead:  # type: ignore[override]
                return super().now(tz) + timedelta(seconds=10)  # type: ignore[arg-type, return-value]

        class Passing:  # the recoverer's own clock: each look is half a second later
            seconds = 0.0

            @classmethod
            def monotonic(cls) -> float:
                cls.seconds += 0.5
                return cls.seconds

        monkeypatch.setattr(recovery, "datetime", Ahead)
        monkeypatch.setattr(recovery, "time", Passing)
        ahead = recovery.Recovery(ledger.db, "ahead", stale_after=1.0, grace=1.0)
        conn = ledger.db.connect()
        try:
            for _ in range(6):  # three seconds by its clock: past stale_after and grace
                assert ahead.orphaned_charges(conn) == []
        finally:
            conn.close()
    finally:
        os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]
        child.join()
        ledger.close()
