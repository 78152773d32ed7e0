"""The per-worker key cache: bounded staleness, and refreshes that callers never wait for."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from edge.relay.keys import KeyCache


class CountingLedger:
    """Answers ``caller_by_digest`` with the key's current status, and counts the reads."""

    def __init__(self) -> None:
        self.status = "active"
        self.reads = 0
        self.row = {"key_id": uuid.uuid4(), "user_id": uuid.uuid4(), "name": "k", "user_status": "active",
                    "expires_at": None, "models": None, "plan_id": None}

    async def aread(self, query: Any) -> dict[str, Any]:
        self.reads += 1
        await asyncio.sleep(0.01)  # a database round trip
        return {**self.row, "status": self.status}


def test_a_key_in_steady_use_is_refreshed_in_the_background() -> None:
    async def scenario() -> None:
        ledger = CountingLedger()
        cache = KeyCache(ledger, ttl=1.0)
        assert (await cache.lookup("d")).key_status == "active"
        await asyncio.sleep(0.6)  # past half its life: served at once, refreshed behind
        ledger.status = "disabled"
        assert (await cache.lookup("d")).key_status == "active"
        await asyncio.sleep(0.1)
        assert ledger.reads == 2
        assert (await cache.lookup("d")).key_status == "disabled"

    asyncio.run(scenario())


def test_an_entry_is_never_served_past_its_life() -> None:
    async def scenario() -> None:
        ledger = CountingLedger()
        cache = KeyCache(ledger, ttl=0.1)
        await cache.lookup("d")
        ledger.status = "disabled"
        await asyncio.sleep(0.11)
        assert (await cache.lookup("d")).key_status == "disabled"
        assert ledger.reads == 2

    asyncio.run(scenario())
