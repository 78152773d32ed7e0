"""Finding the caller of a model call by its ``tsk-`` key, with a per-worker cache.

Entries live one second, so a key disabled, deleted or expired on any worker stops
working everywhere within a second; admission re-checks key and user state under the
database's locks anyway, so no request is ever *admitted* on a stale entry. An entry
used in the second half of its life is refreshed in the background, so a key in steady
use (a client making a call every half second, say) never waits for the database here.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from uuid import UUID

from sanic import Request

from edge.errors import Problem
from edge.security import key_digest
from ledger import Ledger

TTL_SECONDS = 1.0
REFRESH_AFTER = 0.5  # of TTL_SECONDS
MAX_ENTRIES = 50_000


@dataclass(frozen=True, slots=True)
class Caller:
    key_id: UUID
    user_id: UUID
    key_name: str
    key_status: str
    user_status: str
    expires_at: datetime | None
    models: list[str] | None
    plan_id: int | None

    def refusal(self) -> Problem | None:
        """Why this key may not make calls right now (403), if it may not."""
        if self.key_status == "deleted":
            return Problem(403, "permission_denied", "this API key was deleted")
        if self.key_status != "active":
            return Problem(403, "permission_denied", "this API key is disabled")
        if self.user_status != "active":
            return Problem(403, "permission_denied", "this account is disabled")
        if self.expires_at is not None and self.expires_at <= datetime.now(timezone.utc):
            return Problem(403, "permission_denied", "this API key has expired")
        return None


def presented_key(request: Request) -> str | None:
    """The key from ``Authorization: Bearer`` or ``x-api-key`` (SDKs send either)."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    api_key = request.headers.get("x-api-key")
    return api_key.strip() if api_key else None


class KeyCache:
    def __init__(self, ledger: Ledger, ttl: float = TTL_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self._ledger = ledger
        self._ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, Caller | None]] = OrderedDict()
        self._refreshing: dict[str, asyncio.Task[Caller | None]] = {}  # also keeps each task alive

    async def authenticate(self, request: Request) -> Caller:
        key = presented_key(request)
        if not key or not key.startswith("tsk-") or len(key) > 200:
            raise Problem(401, "invalid_api_key", "a TokenSea API key (tsk-…) is required")
        caller = await self.lookup(key_digest(key))
        if caller is None:
            raise Problem(401, "invalid_api_key", "unknown API key")
        return caller

    async def lookup(self, digest: str) -> Caller | None:
        now = self._clock()
        entry = self._entries.get(digest)
        if entry is not None and now - entry[0] < self._ttl:
            if now - entry[0] >= self._ttl * REFRESH_AFTER and digest not in self._refreshing:
                task = asyncio.create_task(self._fetch(digest))
                self._refreshing[digest] = task
                task.add_done_callback(lambda done: self._refreshed(digest, done))
            return entry[1]
        return await self._fetch(digest)

    def _refreshed(self, digest: str, task: asyncio.Task[Caller | None]) -> None:
        del self._refreshing[digest]
        if not task.cancelled():
            task.exception()  # retrieved: if the ledger was unreachable, the entry just ages out

    async def _fetch(self, digest: str) -> Caller | None:
        started = self._clock()  # the entry is as old as the question, not the answer
        row = await self._ledger.aread(lambda q: q.caller_by_digest(digest))
        caller = None if row is None else _caller(row)
        self._entries[digest] = (started, caller)
        self._entries.move_to_end(digest)
        while len(self._entries) > MAX_ENTRIES:
            self._entries.popitem(last=False)
        return caller

    def forget_key(self, key_id: UUID) -> None:
        for digest, (_, caller) in list(self._entries.items()):
            if caller is not None and caller.key_id == key_id:
                del self._entries[digest]

    def forget_user(self, user_id: UUID) -> None:
        for digest, (_, caller) in list(self._entries.items()):
            if caller is not None and caller.user_id == user_id:
                del self._entries[digest]


def _caller(row: dict[str, Any]) -> Caller:
    return Caller(
        key_id=row["key_id"],
        user_id=row["user_id"],
        key_name=row["name"],
        key_status=row["status"],
        user_status=row["user_status"],
        expires_at=row["expires_at"],
        models=row["models"],
        plan_id=row["plan_id"],
    )
