"""Who may try to log in or register now: limits over counters shared by every worker
and host (``edge.counters``, in the database).

Login attempts are counted when they start, before the password check, so that many
concurrent attempts cannot all pass a limit that only counted finished failures:

- per (username, client address): beyond ``login_max_failures`` attempts in the window
  that did not succeed, 429 until the window closes. It locks out the guesser's
  address, not the account's owner elsewhere.
- per username, and per address (across usernames): beyond ``login_max_failures`` and
  ``login_max_failures_per_address``, each attempt first waits a delay that doubles from
  1 s to ``login_max_delay_seconds``. Guesses from many addresses, or many usernames
  sprayed from one, are slowed; the owner, or the neighbours behind one NAT, still get in.

A successful login clears its (username, address) count and takes its attempt back
from the other two. Registrations are limited per client address
(``register_max_per_address`` in ``register_window_seconds``), then 429. An IPv6
address counts as its /64: one subscriber commonly holds a whole /64, and could
otherwise take a new address for every attempt.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import time
from dataclasses import dataclass
from typing import Any

from edge import counters
from edge.errors import Problem
from edge.settings import ServerConfig
from ledger import Ledger

PURGE_EVERY = 300.0  # seconds between two deletions of expired counters, per worker
_MAX_DOUBLINGS = 16


def address_key(address: str) -> str:
    """The address a limit counts: an IPv6 address's /64, anything else as it is."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


def growing_delay(hits: int, limit: int, cap: float) -> float:
    """No wait up to ``limit``, then 1 s, 2 s, 4 s … per attempt beyond it, at most ``cap``."""
    beyond = hits - limit
    if beyond <= 0:
        return 0.0
    return float(min(2.0 ** min(beyond - 1, _MAX_DOUBLINGS), cap))


def too_many(what: str, count: counters.Count) -> Problem:
    retry = max(math.ceil(count.seconds_left), 1)
    return Problem(429, "rate_limited", f"too many {what}; try again in {retry} s", headers={"retry-after": str(retry)})


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    pair: str  # (username, address)
    user: str
    address: str


class Throttles:
    def __init__(self, server: ServerConfig, ledger: Ledger) -> None:
        self._server = server
        self._ledger = ledger
        self._purged = time.monotonic()

    def _purge_due(self) -> bool:
        now = time.monotonic()
        if now - self._purged < PURGE_EVERY:
            return False
        self._purged = now
        return True

    async def login_started(self, username: str, address: str) -> LoginAttempt:
        """Count an attempt; 429 if this address has spent its guesses at this username,
        else wait the delay the username's and the address's counts call for."""
        server = self._server
        address = address_key(address)
        attempt = LoginAttempt(
            counters.subject("login", username.lower(), address),
            counters.subject("login-user", username.lower()),
            counters.subject("login-address", address),
        )
        window = server.login_window_seconds
        purge = self._purge_due()

        def count(q: Any) -> tuple[counters.Count, counters.Count | None, counters.Count | None]:
            if purge:
                counters.purge(q.db, q.conn)
            pair = counters.hit(q.db, q.conn, attempt.pair, window)
            if pair.hits > server.login_max_failures:
                return pair, None, None  # refused without a guess: the others need not know
            return pair, counters.hit(q.db, q.conn, attempt.user, window), counters.hit(q.db, q.conn, attempt.address, window)

        pair, user, by_address = await self._ledger.aread(count)
        if user is None or by_address is None:
            raise too_many("failed logins", pair)
        delay = max(
            growing_delay(user.hits, server.login_max_failures, server.login_max_delay_seconds),
            growing_delay(by_address.hits, server.login_max_failures_per_address, server.login_max_delay_seconds),
        )
        if delay:
            await asyncio.sleep(delay)
        return attempt

    async def login_succeeded(self, attempt: LoginAttempt) -> None:
        def forget(q: Any) -> None:
            counters.clear(q.db, q.conn, attempt.pair)
            counters.release(q.db, q.conn, attempt.user)
            counters.release(q.db, q.conn, attempt.address)

        await self._ledger.aread(forget)

    async def registration(self, address: str) -> None:
        """Count a registration from ``address``; 429 beyond the allowance."""
        server = self._server
        key = counters.subject("register", address_key(address))
        count = await self._ledger.aread(lambda q: counters.hit(q.db, q.conn, key, server.register_window_seconds))
        if count.hits > server.register_max_per_address:
            raise too_many("registrations from your address", count)
