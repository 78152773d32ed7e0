"""Commands: each turns a request (a registration, a key, a grant…) into events to save.

``prepare`` may read (the index tables, the repository) and raise a domain or ledger
error; ``ledger.command_runner`` saves what it returns in one transaction. When a save
collides (a unique name taken meanwhile, a concurrent change to the same aggregate), the
command is prepared again on fresh state, so every check here is re-evaluated. Charges
are not commands: they go through the group commit (``ledger.group_commit``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate

from domain.grants import Grant, GrantReason, RewardSlot
from domain.keys import ApiKey, KeyStatus
from domain.money import Money
from domain.rates import Limits
from domain.users import Role, Status, User
from ledger.errors import Conflict, NotFound
from ledger.queries import Queries

INVITE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: codes are read aloud


def new_invite_code() -> str:
    return "".join(secrets.choice(INVITE_ALPHABET) for _ in range(8))


class Context(Protocol):
    """What a command may look at while it prepares."""

    @property
    def queries(self) -> Queries: ...

    def get(self, aggregate_id: UUID) -> Any: ...


@dataclass(frozen=True)
class Prepared:
    events: list[Any]
    result: Any = None

    @classmethod
    def of(cls, aggregates: list[Aggregate], result: Any = None) -> Prepared:
        return cls([event for aggregate in aggregates for event in aggregate.collect_events()], result)


class Command(Protocol):
    @property
    def idempotent(self) -> bool:
        """Whether a collision on save means "already done" (the result is then False)."""
        ...

    def prepare(self, ctx: Context) -> Prepared: ...


@dataclass(frozen=True)
class RegisterUser:
    username: str
    password_hash: str
    email: str | None
    role: Role
    inviter_code: str | None
    signup_quota: Money
    invite_reward: Money
    idempotent: bool = False

    def prepare(self, ctx: Context) -> Prepared:
        if ctx.queries.user_by_username(self.username) is not None:
            raise Conflict("that username is taken")
        inviter: UUID | None = None
        if self.inviter_code:
            row = ctx.queries.user_by_invite_code(self.inviter_code.strip().upper())
            if row is None:
                raise NotFound("unknown invite code")
            inviter = row["user_id"]
        user = User(
            username=self.username,
            password_hash=self.password_hash,
            email=self.email,
            role=self.role.value,
            invite_code=new_invite_code(),
            invited_by=inviter,
        )
        saved: list[Aggregate] = [user]
        if self.signup_quota:
            saved.append(Grant.give(f"signup:{user.id}", user.id, self.signup_quota, GrantReason.SIGNUP))
        if inviter is not None and self.invite_reward:
            # The invitee's now; the inviter's once the invitee is charged (``RewardInviter``).
            saved.append(Grant.give(f"invite:{user.id}:invitee", user.id, self.invite_reward, GrantReason.INVITE))
        return Prepared.of(saved, user.id)


def inviter_reward_reference(invitee: UUID) -> str:
    """The reference of the grant that pays an invitee's inviter: one per invitee, ever."""
    return f"invite:{invitee}:inviter"


@dataclass(frozen=True)
class RewardInviter:
    """Pay ``invitee``'s inviter their reward, in one of their ``slots`` for ``day``.

    True if this paid it; False if it was paid already (or the invitee has no inviter);
    None if the inviter's rewards for ``day`` are all taken (a later charge of the invitee,
    on another day, tries again). The grant and its slot are saved together: if another
    reward took the slot meanwhile, the runner prepares this again, and it takes the next.
    """

    invitee: UUID
    reward: Money
    slots: int
    day: str
    idempotent: bool = False

    def prepare(self, ctx: Context) -> Prepared:
        invitee = _user(ctx, self.invitee)
        reference = inviter_reward_reference(self.invitee)
        if invitee.invited_by is None or _exists(ctx, Grant.create_id(reference)):
            return Prepared([], False)
        for slot in range(1, self.slots + 1):
            if not _exists(ctx, RewardSlot.create_id(invitee.invited_by, self.day, slot)):
                grant = Grant.give(reference, invitee.invited_by, self.reward, GrantReason.INVITE,
                                   note=f"invited {invitee.username}")
                taken = RewardSlot(inviter=invitee.invited_by, invitee=self.invitee, day=self.day, slot=slot)
                return Prepared.of([grant, taken], True)
        return Prepared([], None)


def _exists(ctx: Context, aggregate_id: UUID) -> bool:
    try:
        ctx.get(aggregate_id)
    except AggregateNotFoundError:
        return False
    return True


def _user(ctx: Context, user_id: UUID) -> User:
    try:
        user = ctx.get(user_id)
    except AggregateNotFoundError:
        raise NotFound("no such user") from None
    if not isinstance(user, User):
        raise NotFound("no such user")
    return user


@dataclass(frozen=True)
class ChangeProfile:
    user_id: UUID
    name: str | None
    email: str | None
    idempotent: bool = False

    def prepare(self, ctx: Context) -> Prepared:
        user = _user(ctx, self.user_id)
        user.change_profile(name=self.name, email=self.email)
        return Prepared.of([user], user.id)


@dataclass(frozen=True)
class AdministerUser:
    user_id: UUID
    status: Status | None
    role: Role | None
    limits: Limits | None = None  # None: leave them as they are
    idempotent: bool = False

    def prepare(self, ctx: Context) -> Prepared:
        user = _user(ctx, self.user_id)
        if self.status is not None:
            user.change_status(self.status)
        if self.role is not None:
            user.change_role(self.role)
        if self.limits is not None:
            user.change_limits(self.limits)
        return Prepared.of([user], user.id)


@dataclass(frozen=True)
class GrantQuota:
    """Grant ``amount`` to a user; ``reference`` makes a retried grant count once."""

    user_id: UUID
    amount: Money
    reason: GrantReason
    note: str
    reference: str
    idempotent: bool = True

    def prepare(self, ctx: Context) -> Prepared:
        _user(ctx, self.user_id)
        grant = Grant.give(self.reference, self.user_id, self.amount, self.reason, self.note)
        return Prepared.of([grant], True)


@dataclass(frozen=True)
class CreateKey:
    user_id: UUID
    name: str
    digest: str
    prefix: str
    quota: Money | None
    models: list[str] | None
    plan_id: int | None
    expires_at: datetime | None
    limits: Limits | None = None
    idempotent: bool = False

    def prepare(self, ctx: Context) -> Prepared:
        _user(ctx, self.user_id)
        key = ApiKey(
            user_id=self.user_id,
            name=self.name,
            digest=self.digest,
            prefix=self.prefix,
            quota=self.quota,
            models=self.models,
            plan_id=self.plan_id,
            expires_at=self.expires_at,
        )
        if self.limits is not None:
            key.change_limits(self.limits)
        return Prepared.of([key], key.id)


_UNSET: Any = object()


@dataclass(frozen=True)
class UpdateKey:
    """Change a key the caller owns; ``quota=None`` means unlimited, leave it out to keep it."""

    user_id: UUID
    key_id: UUID
    name: str | None = None
    status: KeyStatus | None = None
    quota: Any = _UNSET
    limits: Limits | None = None
    delete: bool = False
    idempotent: bool = False

    def prepare(self, ctx: Context) -> Prepared:
        try:
            key = ctx.get(self.key_id)
        except AggregateNotFoundError:
            raise NotFound("no such key") from None
        if not isinstance(key, ApiKey) or key.user_id != self.user_id or key.status == KeyStatus.DELETED.value:
            raise NotFound("no such key")
        if self.delete:
            key.delete()
            return Prepared.of([key], key.id)
        if self.name is not None:
            key.rename(self.name)
        if self.status is not None:
            key.change_status(self.status)
        if self.quota is not _UNSET:
            key.change_quota(self.quota)
        if self.limits is not None:
            key.change_limits(self.limits)
        return Prepared.of([key], key.id)
