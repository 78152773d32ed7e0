"""Rate limits: requests per minute, tokens per minute, calls in flight.

Each account (a user, a key) keeps two leaky buckets and a count of its calls in flight.
A bucket's level drains continuously at its limit per minute, so a full minute's worth
may come at once and then at the limit's pace: ``rpm = 10`` admits 10 calls together,
then one every 6 seconds. A call is admitted only if it fits in both buckets; its tokens
are counted at the admission's bound and corrected to the actual tokens when the call is
charged (the bound is an upper one, so a correction only ever gives room back).

The rule is the same on both backends: here for SQLite (``ledger.admission``), and in
``ts_admit`` on PostgreSQL, where the windows live on the account rows admission locks
anyway, so they hold across every worker and host at no extra round trip.
"""

from __future__ import annotations

from dataclasses import dataclass

MINUTE = 60.0


def _tighter(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


@dataclass(frozen=True, slots=True)
class Limits:
    """An account's limits; None is no limit."""

    rpm: int | None = None
    tpm: int | None = None
    max_concurrency: int | None = None

    def within(self, other: Limits) -> Limits:
        """The tighter of the two, limit by limit (a key's own, within its plan's)."""
        return Limits(_tighter(self.rpm, other.rpm), _tighter(self.tpm, other.tpm),
                      _tighter(self.max_concurrency, other.max_concurrency))

    @property
    def any(self) -> bool:
        return self.rpm is not None or self.tpm is not None or self.max_concurrency is not None


@dataclass(frozen=True, slots=True)
class Limited:
    """Why a call is refused: which limit (``concurrency``, ``rpm`` or ``tpm``), and in how
    many seconds it could be admitted (None: not by waiting, e.g. more tokens than the
    whole limit)."""

    limit: str
    retry_after: float | None


@dataclass(slots=True)
class Window:
    """One account's buckets: their levels as of ``at`` (epoch seconds), and calls in flight."""

    at: float | None = None
    requests: float = 0.0
    tokens: float = 0.0
    holds: int = 0

    def drain(self, limits: Limits, now: float) -> None:
        """Bring the levels to ``now``: each drains at its limit per minute."""
        elapsed = 0.0 if self.at is None else max(0.0, now - self.at)
        self.requests = 0.0 if limits.rpm is None else max(0.0, self.requests - elapsed * limits.rpm / MINUTE)
        self.tokens = 0.0 if limits.tpm is None else max(0.0, self.tokens - elapsed * limits.tpm / MINUTE)
        self.at = now

    def token_room(self, limits: Limits) -> float | None:
        """Tokens one more call may count now (None: no token limit)."""
        return None if limits.tpm is None else limits.tpm - self.tokens

    def refusal(self, limits: Limits, tokens: int) -> Limited | None:
        """Why a call of ``tokens`` cannot be admitted now (the levels drained first)."""
        if limits.max_concurrency is not None and self.holds >= limits.max_concurrency:
            return Limited("concurrency", 1.0)
        if limits.rpm is not None and self.requests + 1 > limits.rpm:
            return Limited("rpm", (self.requests + 1 - limits.rpm) * MINUTE / limits.rpm)
        if limits.tpm is not None and self.tokens + tokens > limits.tpm:
            if tokens > limits.tpm:
                return Limited("tpm", None)
            return Limited("tpm", (self.tokens + tokens - limits.tpm) * MINUTE / limits.tpm)
        return None

    def take(self, limits: Limits, tokens: int) -> None:
        """Count an admitted call."""
        self.holds += 1
        if limits.rpm is not None:
            self.requests += 1
        if limits.tpm is not None:
            self.tokens += tokens

    def settled(self, holds: int, token_refund: int) -> None:
        """Fold in charges: their holds are released, and the tokens their bound counted
        beyond what they used are given back."""
        self.holds = max(0, self.holds - holds)
        self.tokens = max(0.0, self.tokens - token_refund)
