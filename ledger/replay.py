"""The auditor's primitive: fold the whole ledger into balances from the events alone.

Nothing here reads the index tables or the projections; ``tokensea ledger verify``
compares what this computes with both.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from uuid import UUID

from domain.charges import Charge
from domain.grants import Grant
from domain.keys import ApiKey
from domain.money import EXACT
from domain.users import User

PAGE = 5000


@dataclass
class AccountTotals:
    granted: Decimal = Decimal(0)  # users: sum of grants; keys: the current quota (or None)
    used: Decimal = Decimal(0)
    requests: int = 0
    quota: Decimal | None = None
    owner: UUID | None = None


@dataclass
class Totals:
    users: dict[UUID, AccountTotals] = field(default_factory=dict)
    keys: dict[UUID, AccountTotals] = field(default_factory=dict)
    charged_requests: set[str] = field(default_factory=set)
    duplicate_charges: list[str] = field(default_factory=list)
    position: int = 0

    def apply(self, event: Any) -> None:
        if isinstance(event, User.Registered):
            self.users.setdefault(event.originator_id, AccountTotals())
        elif isinstance(event, Grant.QuotaGranted):
            user = self.users.setdefault(event.user_id, AccountTotals())
            user.granted = EXACT.add(user.granted, event.amount.cents)
        elif isinstance(event, ApiKey.KeyCreated):
            self.keys[event.originator_id] = AccountTotals(
                quota=None if event.quota is None else event.quota.cents, owner=event.user_id
            )
        elif isinstance(event, ApiKey.KeyQuotaChanged):
            key = self.keys.setdefault(event.originator_id, AccountTotals())
            key.quota = None if event.quota is None else event.quota.cents
        elif isinstance(event, Charge.TokensConsumed):
            if event.request_id in self.charged_requests:
                self.duplicate_charges.append(event.request_id)
            self.charged_requests.add(event.request_id)
            for account in (
                self.users.setdefault(event.user_id, AccountTotals()),
                self.keys.setdefault(event.key_id, AccountTotals()),
            ):
                account.used = EXACT.add(account.used, event.cost.cents)
                account.requests += 1


def events(app: Any, after: int = 0, page: int = PAGE) -> Iterator[tuple[int, Any]]:
    """Every ledger event after notification ``after``, in order, with its id."""
    position = after
    while True:
        notifications = app.recorder.select_notifications(position + 1, page)
        if not notifications:
            return
        for notification in notifications:
            yield notification.id, app.mapper.to_domain_event(notification)
        position = notifications[-1].id


def replay(app: Any) -> Totals:
    totals = Totals()
    for position, event in events(app):
        totals.apply(event)
        totals.position = position
    return totals
