"""Admin grants under an idempotency reference: the first request records the grant;
the same request again is answered with that grant, and a different one (another
amount, reason or user) under the same reference is refused with it (409), because
the ledger keeps the first and only the first."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from domain.grants import Grant
from domain.money import Money
from ledger import Ledger

MAX_KEY_LENGTH = 200


def api_reference(idempotency_key: str) -> str:
    """One namespace for every admin's keys: a key names one grant, whoever it is for."""
    return f"admin-key:{idempotency_key}"


@dataclass(frozen=True, slots=True)
class Recorded:
    grant_id: UUID
    user_id: UUID
    amount: Money
    note: str

    def same_as(self, user_id: UUID, amount: Money, note: str) -> bool:
        return (self.user_id, self.amount, self.note) == (user_id, amount, note)

    def view(self) -> dict[str, Any]:
        return {"grantId": str(self.grant_id), "userId": str(self.user_id), "amount": str(self.amount),
                "reason": self.note}


def recorded(ledger: Ledger, reference: str) -> Recorded | None:
    """The grant recorded under ``reference`` (blocking: the CLI, or a thread)."""
    try:
        grant = ledger.get(Grant.create_id(reference))
    except AggregateNotFoundError:
        return None
    if not isinstance(grant, Grant):
        return None
    return Recorded(grant.id, grant.user_id, grant.amount, grant.note)
