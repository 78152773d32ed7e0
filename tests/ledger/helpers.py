"""Small builders shared by the ledger tests (also run in child processes)."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from uuid import UUID

from domain.charges import Charge, RequestFacts, RequestStatus, UsageSource
from domain.money import Money
from domain.pricing import Price
from domain.usage import TokenUsage
from domain.users import Role
from ledger import Ledger, commands

PRICE = Price.of("10000", "10000")  # a cent per 100 tokens: easy sums


def register(ledger: Ledger, name: str, quota: str = "0", inviter: str | None = None) -> UUID:
    user_id: UUID = ledger.run(
        commands.RegisterUser(name, "hash", None, Role.USER, inviter, Money(quota), Money(100))
    )
    return user_id


def new_key(ledger: Ledger, user_id: UUID, quota: str | None = None, name: str = "key") -> UUID:
    key_id: UUID = ledger.run(
        commands.CreateKey(user_id, name, f"digest-{user_id}-{name}", "tsk-abcd",
                           None if quota is None else Money(quota), None, None, None)
    )
    return key_id


def facts(request_id: str, user_id: UUID, key_id: UUID) -> RequestFacts:
    return RequestFacts(request_id, user_id, key_id, "key", "gpt-test", "fake", "/v1/chat/completions", False,
                        datetime.now(timezone.utc))


def charge(request_id: str, user_id: UUID, key_id: UUID, tokens: int, reserved: str = "0",
           status: RequestStatus = RequestStatus.SUCCESS) -> Charge.TokensConsumed:
    return Charge.record(facts(request_id, user_id, key_id), TokenUsage(output=tokens), PRICE, Decimal(1),
                         reserved=Money(reserved), latency_ms=1, status=status, usage_source=UsageSource.UPSTREAM)
