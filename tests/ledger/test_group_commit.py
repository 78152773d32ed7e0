"""The write core's contract (``ledger.group_commit``): the same cases on both databases,
through both ways in: the serving event loop (``aadmit``/``asettle``, as the edge) and a
plain thread (``admit``/``settle``, as the CLI, recovery and tests, through the ledger's
own loop).

Faults are staged in the real drivers, subclassed: a statement that lands but whose
answer is lost, a landed-check that runs before a slow first attempt commits, refused
connections, a job the ledger cannot take, a metric hook that fails.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

import pytest

from domain.money import Money
from ledger import Database, Hold, Ledger, LedgerUnavailable, OutputBound, writes
from ledger.group_commit import Pending
from ledger.replay import replay
from tests.ledger.helpers import charge, facts, new_key, register

T = TypeVar("T")


@dataclass
class Faults:
    lose: set[str] = field(default_factory=set)  # drivers (by lane) whose next answer is lost after it landed
    miss: set[str] = field(default_factory=set)  # drivers whose next landed-check finds nothing
    refuse: bool = False  # new connections are refused
    connects: Counter[str] = field(default_factory=Counter)


def _faulty(driver: type) -> type:
    class Faulty(driver):  # type: ignore[valid-type, misc]
        faults: Faults

        async def connect(self) -> Any:
            if self.faults.refuse:
                raise ConnectionRefusedError("connection refused")
            self.faults.connects[self.lane] += 1
            return await super().connect()

        async def execute(self, conn: Any, batch: list[Any]) -> None:
            if any(_request_id(pending.job) == "poison" for pending in batch):
                raise ValueError("a job the ledger cannot take")
            if self.lane not in self.faults.lose:
                await super().execute(conn, batch)
                return
            self.faults.lose.discard(self.lane)
            await super().execute(conn, [Pending(pending.job) for pending in batch])  # it lands, unheard
            raise ConnectionResetError("the answer was lost")

        async def landed(self, conn: Any, batch: list[Any]) -> None:
            if self.lane in self.faults.miss:
                self.faults.miss.discard(self.lane)
                return
            await super().landed(conn, batch)

    return Faulty


def _request_id(job: Any) -> str:
    return str(job.facts.request_id if isinstance(job, Hold) else job.request_id)


@pytest.fixture
def faults(monkeypatch: pytest.MonkeyPatch) -> Faults:
    staged = Faults()
    for name in ("PostgresHolds", "PostgresCharges", "SQLiteHolds", "SQLiteCharges"):
        faulty = _faulty(getattr(writes, name))
        faulty.faults = staged
        monkeypatch.setattr(writes, name, faulty)
    return staged


@dataclass
class Caller:
    """One way into the ledger: the serving event loop (``loop``) or a plain thread."""

    name: str
    ledger: Ledger
    batches: list[tuple[str, int]]
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    metric_fails: bool = False

    def admit(self, hold: Hold) -> Any:
        return self._do(lambda: self.ledger.aadmit(hold), lambda: self.ledger.admit(hold))

    def settle(self, made: Any) -> Any:
        return self._do(lambda: self.ledger.asettle(made), lambda: self.ledger.settle(made))

    def _do(self, on_loop: Callable[[], Awaitable[T]], on_thread: Callable[[], T]) -> T:
        if self.name == "thread":
            return on_thread()
        return self.loop.run_until_complete(on_loop())


@pytest.fixture(params=["loop", "thread"])
def caller(request: pytest.FixtureRequest, database_url: str, faults: Faults) -> Iterator[Caller]:
    batches: list[tuple[str, int]] = []

    def on_batch(lane: str, size: int, _: float) -> None:
        batches.append((lane, size))
        if made.metric_fails:
            raise RuntimeError("the metric backend is down")

    made = Caller(request.param, Ledger(Database.from_url(database_url), serving=True, on_batch=on_batch), batches)
    try:
        yield made
    finally:
        made.loop.run_until_complete(made.ledger.writes.aclose())
        made.loop.close()
        made.ledger.close()


def _account(ledger: Ledger, quota: str = "100") -> tuple[Any, Any]:
    user = register(ledger, "alice", quota=quota)
    return user, new_key(ledger, user)


def test_a_lost_answer_counts_once(caller: Caller, faults: Faults) -> None:
    """The statement landed but its answer was lost: it is resent on a fresh connection
    after the landed-check, so the hold is admitted once (with the limit its stored amount
    pays for) and the charge reported as this call's, each counted once."""
    ledger = caller.ledger
    alice, key = _account(ledger)
    caller.admit(Hold(facts("warm", alice, key), Money(1), ledger.instance_id))
    faults.lose.add("holds")
    flexible = Hold(facts("big", alice, key), Money(10), ledger.instance_id, output=OutputBound(Decimal("0.5"), 40))
    assert caller.admit(flexible) == 40  # 10 + 40 × 0.5 = 30 held
    assert caller.settle(charge("warm", alice, key, tokens=10, reserved="1")) is True
    faults.lose.add("events")
    big = charge("big", alice, key, tokens=20, reserved="30")
    assert caller.settle(big) is True
    assert caller.settle(big) is False  # and a second charge is a duplicate
    assert faults.connects["holds"] == faults.connects["events"] == 2  # one reconnection each
    user = ledger.read(lambda q: q.user_by_id(alice))
    assert (user["held"], user["used"]) == (Decimal(0), Decimal("0.3"))
    assert replay(ledger.app).duplicate_charges == []


def test_a_collision_on_the_resend_is_the_first_attempt(caller: Caller, faults: Faults) -> None:
    """The landed-check ran before the first attempt committed, so the resend collides
    with it: that collision is the first attempt (found on a second look), not a conflict
    with someone else, and not "charged already"."""
    ledger = caller.ledger
    alice, key = _account(ledger)
    faults.lose.add("holds")
    faults.miss.add("holds")
    assert caller.admit(Hold(facts("r1", alice, key), Money(7), ledger.instance_id)) is None
    faults.lose.add("events")
    faults.miss.add("events")
    assert caller.settle(charge("r1", alice, key, tokens=100, reserved="7")) is True
    user = ledger.read(lambda q: q.user_by_id(alice))
    assert (user["held"], user["used"]) == (Decimal(0), Decimal(1))


def test_refused_connections_fail_closed_and_service_resumes(caller: Caller, faults: Faults) -> None:
    ledger = caller.ledger
    alice, key = _account(ledger)
    caller.admit(Hold(facts("first", alice, key), Money(1), ledger.instance_id))
    faults.lose.add("holds")  # the connection breaks under the next statement...
    faults.refuse = True  # ...and no new one can be opened
    with pytest.raises(LedgerUnavailable):
        caller.admit(Hold(facts("down", alice, key), Money(5), ledger.instance_id))
    faults.refuse = False
    assert caller.admit(Hold(facts("back", alice, key), Money(1), ledger.instance_id)) is None
    # "down" landed before its answer was lost: its caller was refused, so maintenance
    # releases it as interrupted, at no charge.
    assert _eventually(lambda: ledger.read(lambda q: q.user_by_id(alice))["held"] == Decimal(2))
    assert "down" in replay(ledger.app).charged_requests


def test_a_job_the_ledger_cannot_take_fails_alone(caller: Caller) -> None:
    """One request that cannot be written never fails the others in its batch."""
    ledger = caller.ledger
    alice, key = _account(ledger)
    holds = [Hold(facts(f"r{n}", alice, key), Money(1), ledger.instance_id) for n in range(5)]
    holds.insert(2, Hold(facts("poison", alice, key), Money(1), ledger.instance_id))
    if caller.name == "loop":
        async def together() -> list[Any]:
            return await asyncio.gather(*(ledger.aadmit(h) for h in holds), return_exceptions=True)

        outcomes = caller.loop.run_until_complete(together())
    else:
        outcomes = []
        for hold in holds:
            try:
                outcomes.append(ledger.admit(hold))
            except ValueError as exc:
                outcomes.append(exc)
    assert isinstance(outcomes.pop(2), ValueError)  # the bug reaches its caller as it is (a 500), not a 503
    assert outcomes == [None] * 5
    assert ledger.read(lambda q: q.user_by_id(alice))["held"] == Decimal(5)


def test_a_failing_metric_hook_stops_nothing(caller: Caller) -> None:
    ledger = caller.ledger
    alice, key = _account(ledger)
    caller.metric_fails = True
    for n in range(3):
        assert caller.admit(Hold(facts(f"r{n}", alice, key), Money(1), ledger.instance_id)) is None
        assert caller.settle(charge(f"r{n}", alice, key, tokens=1, reserved="1")) is True
    assert ("holds", 1) in caller.batches


def test_a_missing_table_is_a_bug_not_an_outage(database_url: str) -> None:
    """Only an unreachable database is LedgerUnavailable (a 503 that resumes by itself);
    a statement that cannot run (here: a table gone) is raised as it is, for a 500."""
    ledger = Ledger(Database.from_url(database_url))
    try:
        alice, key = _account(ledger)
        conn = ledger.db.connect()
        try:
            conn.execute("ALTER TABLE ts_holds RENAME TO ts_holds_gone")
        finally:
            conn.close()
        with pytest.raises(Exception) as raised:
            ledger.admit(Hold(facts("r1", alice, key), Money(1), ledger.instance_id))
        assert not isinstance(raised.value, LedgerUnavailable)
        assert "ts_holds" in str(raised.value)
    finally:
        ledger.close()


def _eventually(check: Callable[[], bool], timeout: float = 15.0) -> bool:
    from tests.gateway import wait_until

    return bool(wait_until(check, timeout=timeout, interval=0.1))

