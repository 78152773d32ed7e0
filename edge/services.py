"""Everything a worker opens at start and closes at stop, in one typed object."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from edge.relay.keys import KeyCache
from edge.security import Sessions
from edge.settings import Settings
from edge.throttle import Throttles
from ledger import Ledger

log = logging.getLogger("tokensea")


@dataclass
class Services:
    settings: Settings
    ledger: Ledger
    sessions: Sessions
    throttle: Throttles
    http: aiohttp.ClientSession
    keys: KeyCache
    background: set[asyncio.Task[Any]] = field(default_factory=set)

    def spawn(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``work`` to completion even if the request that started it is cancelled;
        shutdown waits for it."""
        task = asyncio.get_running_loop().create_task(work)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return task

    async def drain(self, timeout: float = 30.0) -> None:
        if self.background:
            _, pending = await asyncio.wait(set(self.background), timeout=timeout)
            if pending:
                log.error("%d background settlements did not finish before shutdown", len(pending))
