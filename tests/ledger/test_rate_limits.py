"""Rate limits in admission (``domain.rates``), on SQLite and on PostgreSQL: calls in
flight, requests and tokens per minute, decided on the locked rows, in order within a
batch; a refused call counts nowhere; a charge gives back what its bound over-counted."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from domain.money import Money
from domain.rates import Limits
from ledger import Database, Hold, Ledger, OutputBound, Refused
from tests.ledger.helpers import charge, facts, new_key, register


@pytest.fixture
def ledger(database_url: str) -> Iterator[Ledger]:
    opened = Ledger(Database.from_url(database_url))
    yield opened
    opened.close()


def _together(ledger: Ledger, holds: list[Hold]) -> list[Any]:
    async def run() -> list[Any]:
        return await asyncio.gather(*(ledger.aadmit(hold) for hold in holds), return_exceptions=True)

    return asyncio.run(run())


def test_calls_in_flight_are_limited_and_released_by_their_charges(ledger: Ledger) -> None:
    alice = register(ledger, "alice", quota="100")
    key = new_key(ledger, alice)
    plan = Limits(max_concurrency=2)
    hold = lambda n: Hold(facts(f"r{n}", alice, key), Money(1), ledger.instance_id, plan_limits=plan)  # noqa: E731
    outcomes = _together(ledger, [hold(n) for n in range(4)])
    assert outcomes[:2] == [None, None]
    assert all(isinstance(o, Refused) and o.reason == "key_concurrency" and o.retry_after == 1 for o in outcomes[2:])
    assert ledger.read(lambda q: q.user_by_id(alice))["held"] == Decimal(2)  # refused calls hold nothing
    ledger.settle(charge("r0", alice, key, tokens=10, reserved="1"))
    assert ledger.admit(hold(9)) is None  # the charge released its place
    with pytest.raises(Refused, match="key_concurrency"):
        ledger.admit(hold(10))


def test_requests_per_minute_admit_a_minutes_worth_then_wait(ledger: Ledger) -> None:
    alice = register(ledger, "alice", quota="100")
    key = new_key(ledger, alice)
    plan = Limits(rpm=3)
    outcomes = _together(ledger, [Hold(facts(f"r{n}", alice, key), Money(1), ledger.instance_id, plan_limits=plan)
                                  for n in range(5)])
    assert outcomes[:3] == [None, None, None]
    for refused in outcomes[3:]:
        assert isinstance(refused, Refused) and refused.reason == "key_rpm"
        assert refused.retry_after is not None and 0 < refused.retry_after <= 20  # one more every 20 s
    other = new_key(ledger, alice, name="other")  # a key's window is its own
    assert ledger.admit(Hold(facts("o", alice, other), Money(1), ledger.instance_id, plan_limits=plan)) is None


def test_tokens_are_counted_at_the_bound_and_corrected_by_the_charge(ledger: Ledger) -> None:
    alice = register(ledger, "alice", quota="100")
    key = new_key(ledger, alice)
    plan = Limits(tpm=1000)

    def hold(name: str, tokens: int, **extra: Any) -> Hold:
        return Hold(facts(name, alice, key), Money(1), ledger.instance_id, tokens=tokens, plan_limits=plan, **extra)

    assert ledger.admit(hold("a", 800)) is None
    with pytest.raises(Refused) as refused:
        ledger.admit(hold("b", 800))  # 1,600 tokens within the minute
    assert refused.value.reason == "key_tpm" and refused.value.retry_after is not None
    ledger.settle(charge("a", alice, key, tokens=100, reserved="1"))  # it used 100: 700 given back
    assert ledger.admit(hold("b", 800)) is None
    # Without a client limit, the output limit is lowered to the room the window leaves.
    flexible = hold("c", 50, output=OutputBound(Decimal("0.001"), most=4000))
    limit = ledger.admit(flexible)
    # 1,000 - 900 counted - 50 of prompt, plus what drained meanwhile (1,000 a minute)
    assert limit is not None and 50 <= limit <= 50 + 17
    with pytest.raises(Refused) as never:
        ledger.admit(hold("d", 1001))  # more than a whole minute's worth: waiting cannot help
    assert never.value.reason == "key_tpm" and never.value.retry_after is None
    assert ledger.read(lambda q: q.holds())  # and nothing refused was held
    assert {h["request_id"] for h in ledger.read(lambda q: q.holds())} == {"b", "c"}
