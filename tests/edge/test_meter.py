"""The meter's promise: whatever recording a charge raises, the caller hears of it (and
fails closed) and the charge is tried again until it lands."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from types import SimpleNamespace
from typing import Any
from uuid import uuid4

import pytest

from domain.catalogue import Catalogue, Model, Route
from domain.charges import RequestStatus, UsageSource
from domain.money import Money
from domain.pricing import Price, worst_case_cost
from domain.usage import TokenUsage
from edge.relay import meter
from edge.relay.keys import Caller
from edge.relay.meter import Meter, OutputLimit
from ledger import LedgerUnavailable
from tests.ledger.helpers import PRICE, facts


class FailsOnce:
    """A ledger whose first charge fails with something other than ``LedgerUnavailable``
    (a lane closed at shutdown, a value it refuses...)."""

    def __init__(self) -> None:
        self.charges: list[Any] = []

    async def asettle(self, charge: Any) -> bool:
        self.charges.append(charge)
        if len(self.charges) == 1:
            raise RuntimeError("ledger-charges-lane is closed")
        return True


def test_an_unexpected_failure_is_a_withheld_answer_and_the_charge_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(meter, "RETRY_SECONDS", (0.01,))
    ledger = FailsOnce()

    async def scenario() -> None:
        tasks: list[asyncio.Task[Any]] = []
        svc = SimpleNamespace(ledger=ledger, spawn=lambda work: tasks.append(asyncio.create_task(work)))
        metered = Meter(svc, facts("req_x", uuid4(), uuid4()), Money(5), Decimal(1))  # type: ignore[arg-type]
        first = metered.settle(Route("fake", "gpt-test", PRICE), TokenUsage(output=3), RequestStatus.SUCCESS,
                               UsageSource.UPSTREAM)
        with pytest.raises(LedgerUnavailable):
            await asyncio.wait_for(first, 5)
        await asyncio.wait_for(asyncio.gather(*tasks), 5)

    asyncio.run(scenario())
    assert len(ledger.charges) == 2 and ledger.charges[0] is ledger.charges[1]


class Admits:
    """A ledger that admits every hold, choosing ``chosen`` for one without a fixed limit."""

    instance_id = "test"

    def __init__(self, chosen: int) -> None:
        self.chosen = chosen
        self.holds: list[Any] = []

    async def aadmit(self, hold: Any) -> int | None:
        self.holds.append(hold)
        return None if hold.output is None else min(self.chosen, hold.output.most)


@pytest.mark.parametrize(("requested", "choices", "most", "granted"), [
    (None, 1, 2000, 1500),   # no client limit: the ledger's choice
    (None, 3, None, 1500),   # n choices each may use the whole limit; no model maximum: the default bounds it
    (None, 1, 1000, 1000),   # the ledger never grants above the model's maximum
    (50_000, 1, 2000, 2000),  # a client limit above the model's maximum is lowered to it
    (300, 2, 2000, 300),     # a client limit within it is kept, a fixed hold
])
def test_the_hold_is_the_worst_case_of_the_granted_limit(
    requested: int | None, choices: int, most: int | None, granted: int
) -> None:
    ledger = Admits(1500)
    price = Price.of("300", "1500", "30", "375")
    model = Model("m", (Route("fake", "m", price),), most)
    caller = Caller(uuid4(), uuid4(), "key", "active", "active", None, None, None)
    settings = SimpleNamespace(catalogue=Catalogue(models={"m": model}))
    svc = SimpleNamespace(ledger=ledger, settings=settings)

    async def scenario() -> Meter:
        return await meter.admit(svc, caller, model, request_id="req_1", endpoint="/v1/chat/completions",  # type: ignore[arg-type]
                                 stream=False, prompt_tokens_bound=777, output=OutputLimit(requested, choices))

    admitted = asyncio.run(scenario())
    (hold,) = ledger.holds
    assert (hold.output is None) is (requested is not None)
    if hold.output is not None:
        assert hold.output.most == (most or meter.DEFAULT_OUTPUT_LIMIT)
    assert admitted.limit == granted
    assert admitted.hold == worst_case_cost(777, granted * choices, price)  # exactly the fixed worst case of that limit
