"""The meter's promise: whatever recording a charge raises, the caller hears of it (and
fails closed) and the charge is tried again until it lands."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from types import SimpleNamespace
from typing import Any
from uuid import uuid4

import pytest

from domain.catalogue import Route
from domain.charges import RequestStatus, UsageSource
from domain.money import Money
from domain.usage import TokenUsage
from edge.relay import meter
from edge.relay.meter import Meter
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
