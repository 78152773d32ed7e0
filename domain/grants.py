"""``Grant``: one ``QuotaGranted`` event per grant, its id derived from a reference so a
retried grant is recorded once. ``RewardSlot``: one of an inviter's daily invite
rewards, taken with the grant that pays it, so the cap holds under any concurrency."""

from __future__ import annotations

from enum import StrEnum
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import InvalidAmount
from domain.ids import grant_id_for, reward_slot_id_for
from domain.money import Money


class GrantReason(StrEnum):
    SIGNUP = "signup"
    INVITE = "invite"
    ADMIN = "admin"
    PLAN = "plan"


class Grant(Aggregate):
    TOPIC = "tokensea.Grant"

    class Created(Aggregate.Created):  # unused; eventsourcing wants every event class named
        TOPIC = "tokensea.Grant.Created"

    class QuotaGranted(Aggregate.Created):
        TOPIC = "tokensea.QuotaGranted"
        reference: str
        user_id: UUID
        amount: Money
        reason: str
        note: str

    @staticmethod
    def create_id(reference: str) -> UUID:
        return grant_id_for(reference)

    @event(QuotaGranted)
    def __init__(self, reference: str, user_id: UUID, amount: Money, reason: str, note: str) -> None:
        if amount.cents <= 0:
            raise InvalidAmount("a grant must be greater than zero")
        self.reference = reference
        self.user_id = user_id
        self.amount = amount
        self.reason = GrantReason(reason).value
        self.note = note

    @classmethod
    def give(cls, reference: str, user_id: UUID, amount: Money, reason: GrantReason, note: str = "") -> Grant:
        return cls(reference=reference, user_id=user_id, amount=amount, reason=reason.value, note=note)


class RewardSlot(Aggregate):
    """The ``slot``-th invite reward paid to ``inviter`` on ``day`` (UTC). Its id comes
    from those three, so two rewards can never take the same slot: an inviter is paid at
    most as many rewards a day as there are slots."""

    TOPIC = "tokensea.RewardSlot"

    class Created(Aggregate.Created):  # unused; eventsourcing wants every event class named
        TOPIC = "tokensea.RewardSlot.Created"

    class Taken(Aggregate.Created):
        TOPIC = "tokensea.InviteRewardSlotTaken"
        inviter: UUID
        invitee: UUID
        day: str
        slot: int

    @staticmethod
    def create_id(inviter: UUID, day: str, slot: int) -> UUID:
        return reward_slot_id_for(inviter, day, slot)

    @event(Taken)
    def __init__(self, inviter: UUID, invitee: UUID, day: str, slot: int) -> None:
        self.inviter = inviter
        self.invitee = invitee
        self.day = day
        self.slot = slot
