"""Admission: reserve a request's worst-case cost before it reaches an upstream.

A hold is a row in ``ts_holds`` plus the same amount added to ``held`` on the user and
on the key, written in one transaction under row locks on both (``FOR UPDATE`` on
PostgreSQL, the database write lock on SQLite). A request is admitted only if, for the
user and for the key, ``granted - used - held >= amount`` at that moment. Every
process and host takes the same locks in the same order (users, then keys, by id), so
concurrent admissions serialize per account and can never overdraw it: the sum of
holds and charges stays within the grant.

A hold is released only by the request's ``TokensConsumed`` (``ledger.effects``), or
by recovery when the process that held it died. A charge does not touch the account
rows: it leaves its cost and released hold in the ``ts_settled`` inbox, and admission
folds the inbox into the rows it has just locked before it decides. Until then the
rows overstate ``used + held`` (a charge moves at most its hold from ``held`` to
``used``), so a decision on them is never too generous. Hold transactions commit with
``synchronous_commit = off`` on PostgreSQL: they hold no money, they survive any crash
of the edge (the server keeps them), and they keep an fsync off the request path.

Rate limits are decided in the same place, on the same locked rows (``domain.rates``):
a call over its user's or key's requests, tokens or calls in flight is refused (429)
after the account checks (403) and before the quota (402), and counts nowhere.

On PostgreSQL the whole batch is one call of the ``ts_admit`` function (its latest
definition is in ``ledger/migrations``), which applies ``decide``'s rule where the rows
are: one round trip per batch, and locks held for the length of one statement, not of a
round trip (``ledger.postgres_writes``). On SQLite, ``decide`` runs under the database
write lock (``ledger.sqlite_admission``). The same tests run on both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from domain.charges import RequestFacts
from domain.money import EXACT, Money
from domain.rates import Limits, Window
from ledger.errors import Refused


@dataclass(frozen=True)
class OutputBound:
    """An output limit for the ledger to choose: the largest, up to ``most`` tokens, that
    the accounts can pay at ``per_token`` cents per token of limit (output price × plan
    multiplier × choices, / 1e6), and that their tokens-per-minute limits leave room for.
    Chosen under the admission's row locks, so concurrent calls without a client limit
    can never overdraw."""

    per_token: Decimal
    most: int


@dataclass(frozen=True)
class Hold:
    """A reservation: ``amount`` (the prompt bound's cost, or the whole worst case when
    the output limit is fixed), plus ``limit × per_token`` when ``output`` is set.
    ``tokens`` is the call's token bound likewise (the output counted in it when the limit
    is fixed), and ``plan_limits`` the rate limits of the key's plan (from the config)."""

    facts: RequestFacts
    amount: Money
    instance_id: str
    output: OutputBound | None = None
    tokens: int = 0
    plan_limits: Limits = field(default_factory=Limits)

    def reserved(self, limit: int | None) -> Decimal:
        """The amount held when admitted with ``limit`` (None: a fixed hold)."""
        if limit is None or self.output is None:
            return self.amount.cents
        return EXACT.add(self.amount.cents, EXACT.multiply(Decimal(limit), self.output.per_token))

    def counted(self, limit: int | None) -> int:
        """The tokens counted against tokens-per-minute when admitted with ``limit``."""
        return self.tokens + (limit or 0)

    def limit_of(self, reserved: Decimal) -> int | None:
        """The output limit a hold of ``reserved`` was admitted with (None: a fixed hold)."""
        if self.output is None:
            return None
        if not self.output.per_token:
            return self.output.most
        return int(EXACT.divide_int(EXACT.subtract(reserved, self.amount.cents), self.output.per_token))


@dataclass
class Account:
    """A user's or a key's row as admission sees it, locked for the transaction."""

    status: str
    limit: Decimal | None  # None: unlimited (a key without quota)
    used: Decimal
    held: Decimal
    owner: UUID | None = None
    expires_at: datetime | None = None
    limits: Limits = field(default_factory=Limits)
    window: Window = field(default_factory=Window)
    settled: tuple[int, int] = (0, 0)  # holds released and tokens to give back, from the inbox
    drained: bool = False

    def available(self) -> Decimal | None:
        if self.limit is None:
            return None
        return EXACT.subtract(EXACT.subtract(self.limit, self.used), self.held)

    def bring_up_to(self, limits: Limits, now: float) -> None:
        """Drain the buckets to ``now`` and fold in the inbox's charges, once per batch."""
        if not self.drained:
            self.window.drain(limits, now)
            self.window.settled(*self.settled)
            self.drained = True


@dataclass(frozen=True)
class Admission:
    """An admitted hold: the output limit chosen (None for a fixed one), and what it counts."""

    limit: int | None
    reserved: Decimal
    tokens: int


def decide(hold: Hold, user: Account | None, key: Account | None, now: datetime) -> Refused | Admission:
    """Why ``hold`` cannot be admitted against these accounts (403, then 429, then 402),
    or how it is; the accounts' windows are drained to ``now`` on the way."""
    if user is None or key is None or key.owner != hold.facts.user_id:
        return Refused("unknown_account")
    if user.status != "active":
        return Refused("user_disabled")
    if key.status != "active":
        return Refused("key_disabled")
    if key.expires_at is not None and key.expires_at <= now:
        return Refused("key_expired")
    output = hold.output
    key_limits = key.limits.within(hold.plan_limits)
    seconds = now.timestamp()
    least_tokens = hold.tokens + (0 if output is None else 1)
    for account, limits, whose in ((user, user.limits, "user"), (key, key_limits, "key")):
        account.bring_up_to(limits, seconds)
        limited = account.window.refusal(limits, least_tokens)
        if limited is not None:
            return Refused(f"{whose}_{limited.limit}", retry_after=limited.retry_after)
    needed = hold.amount.cents if output is None else EXACT.add(hold.amount.cents, output.per_token)
    for account, reason in ((user, "insufficient_user_quota"), (key, "insufficient_key_quota")):
        available = account.available()
        if available is not None and available < needed:
            return Refused(reason, needed=Money(needed), available=Money(max(available, Decimal(0))))
    limit = None if output is None else _largest_limit(hold, output, user, key, key_limits)
    return Admission(limit, hold.reserved(limit), hold.counted(limit))


def _largest_limit(hold: Hold, output: OutputBound, user: Account, key: Account, key_limits: Limits) -> int:
    """The largest output limit both accounts can pay, and their token limits leave room for."""
    limit = Decimal(output.most)
    if output.per_token:
        room = min(a for a in (user.available(), key.available()) if a is not None)
        limit = min(limit, EXACT.divide_int(EXACT.subtract(room, hold.amount.cents), output.per_token))
    for account, limits in ((user, user.limits), (key, key_limits)):
        tokens = account.window.token_room(limits)
        if tokens is not None:
            limit = min(limit, Decimal(int(tokens)) - hold.tokens)
    return int(limit)


def count_admitted(user: Account, key: Account, hold: Hold, admission: Admission) -> None:
    """Count an admitted hold on its accounts (the caller writes them back)."""
    for account, limits in ((user, user.limits), (key, key.limits.within(hold.plan_limits))):
        account.held = EXACT.add(account.held, admission.reserved)
        account.window.take(limits, admission.tokens)
