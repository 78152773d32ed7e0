"""The per-worker key cache: bounded staleness, and refreshes that callers never wait for.
Time is a fake clock the tests move; a refresh is waited for as a condition."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from edge.relay.keys import KeyCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingLedger:
    """Answers ``caller_by_digest`` with the key's current status, and counts the reads."""

    def __init__(self) -> None:
        self.status = "active"
        self.reads = 0
        self.row = {"key_id": uuid.uuid4(), "user_id": uuid.uuid4(), "name": "k", "user_status": "active",
                    "expires_at": None, "models": None, "plan_id": None}

    async def aread(self, query: Any) -> dict[str, Any]:
        self.reads += 1
        await asyncio.sleep(0)  # a database round trip: the caller yields
        return {**self.row, "status": self.status}


async def _until(check: Any) -> None:
    for _ in range(1000):
        if check():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never met")


def test_a_key_in_steady_use_is_refreshed_in_the_background() -> None:
    async def scenario() -> None:
        ledger, clock = CountingLedger(), Clock()
        cache = KeyCache(ledger, ttl=1.0, clock=clock)  # type: ignore[arg-type]
        assert (await cache.lookup("d")).key_status == "active"
        clock.now += 0.6  # past half its life: served at once, refreshed behind
        ledger.status = "disabled"
        assert (await cache.lookup("d")).key_status == "active"
        await _until(lambda: ledger.reads == 2 and not cache._refreshing)
        assert (await cache.lookup("d")).key_status == "disabled"
        assert ledger.reads == 2  # served from the refreshed entry

    asyncio.run(scenario())


def test_an_entry_is_never_served_past_its_life() -> None:
    async def scenario() -> None:
        ledger, clock = CountingLedger(), Clock()
        cache = KeyCache(ledger, ttl=0.1, clock=clock)  # type: ignore[arg-type]
        await cache.lookup("d")
        ledger.status = "disabled"
        clock.now += 0.1
        assert (await cache.lookup("d")).key_status == "disabled"
        assert ledger.reads == 2

    asyncio.run(scenario())
