"""The auditor's fold: every derived row, computed from the events alone.

Written apart from the projections and the ledger's effects on purpose: an audit that
reused the code it audits would agree with its bugs. It yields, for each table that
TokenSea derives from the events, the rows (by key) and every column's value; sums of
money run in the exact decimal context.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

from domain.charges import Charge, RequestStatus
from domain.grants import Grant
from domain.keys import ApiKey, KeyStatus
from domain.money import EXACT
from domain.users import Status, User

Rows = dict[Any, dict[str, Any]]
_ZERO = Decimal(0)


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc)


@dataclass
class Fold:
    """The derived tables as the events up to ``position`` make them."""

    position: int = 0
    users: Rows = field(default_factory=dict)  # ts_users (without ``held`` and ``holds``: holds are not events)
    keys: Rows = field(default_factory=dict)  # ts_keys (likewise)
    user_balances: Rows = field(default_factory=dict)  # proj_user_balances
    key_balances: Rows = field(default_factory=dict)  # proj_key_balances
    logs: Rows = field(default_factory=dict)  # proj_request_logs, by request id
    daily: Rows = field(default_factory=dict)  # proj_usage_daily, by (user, day, model)
    hourly: Rows = field(default_factory=dict)  # proj_usage_hourly, by (user, hour, model)
    duplicate_charges: list[str] = field(default_factory=list)

    def apply(self, position: int, event: Any) -> None:
        self.position = position
        if isinstance(event, Charge.TokensConsumed):
            self._charge(position, event)
        elif isinstance(event, User.Registered):
            self._registered(event)
        elif isinstance(event, User.ProfileChanged):
            self.users[event.originator_id].update(name=event.name, email=event.email)
        elif isinstance(event, User.RoleChanged):
            self.users[event.originator_id]["role"] = event.role
        elif isinstance(event, User.StatusChanged):
            self.users[event.originator_id]["status"] = event.status
        elif isinstance(event, User.LimitsChanged):
            self.users[event.originator_id].update(_limits(event))
        elif isinstance(event, Grant.QuotaGranted):
            self._add(self.users[event.user_id], "granted", event.amount.cents)
            self._add(self._user_balance(event.user_id), "quota", event.amount.cents)
        elif isinstance(event, ApiKey.KeyCreated):
            self._key_created(event)
        elif isinstance(event, ApiKey.KeyRenamed):
            self.keys[event.originator_id]["name"] = event.name
        elif isinstance(event, ApiKey.KeyStatusChanged):
            self.keys[event.originator_id]["status"] = event.status
        elif isinstance(event, ApiKey.KeyQuotaChanged):
            self.keys[event.originator_id]["quota"] = None if event.quota is None else event.quota.cents
        elif isinstance(event, ApiKey.KeyDeleted):
            self.keys[event.originator_id]["status"] = KeyStatus.DELETED.value
        elif isinstance(event, ApiKey.KeyLimitsChanged):
            self.keys[event.originator_id].update(_limits(event))

    @staticmethod
    def _add(row: dict[str, Any], column: str, amount: Decimal) -> None:
        row[column] = EXACT.add(row[column], amount)

    def _registered(self, event: Any) -> None:
        self.users[event.originator_id] = {
            "username": event.username, "username_key": event.username.lower(), "name": event.username,
            "email": event.email, "role": event.role, "status": Status.ACTIVE.value,
            "password_hash": event.password_hash, "invite_code": event.invite_code, "invited_by": event.invited_by,
            "created_at": _utc(event.timestamp), "granted": _ZERO, "used": _ZERO,
            "rpm": None, "tpm": None, "max_concurrency": None,
        }
        self._user_balance(event.originator_id)

    def _key_created(self, event: Any) -> None:
        self.keys[event.originator_id] = {
            "user_id": event.user_id, "digest": event.digest, "prefix": event.prefix, "name": event.name,
            "status": KeyStatus.ACTIVE.value, "quota": None if event.quota is None else event.quota.cents,
            "models": None if event.models is None else list(event.models), "plan_id": event.plan_id,
            "expires_at": None if event.expires_at is None else _utc(event.expires_at),
            "created_at": _utc(event.timestamp), "used": _ZERO,
            "rpm": None, "tpm": None, "max_concurrency": None,
        }
        self._key_balance(event.originator_id, event.user_id)

    def _user_balance(self, user_id: UUID) -> dict[str, Any]:
        return self.user_balances.setdefault(user_id, {"quota": _ZERO, "used": _ZERO, "request_count": 0})

    def _key_balance(self, key_id: UUID, user_id: UUID) -> dict[str, Any]:
        return self.key_balances.setdefault(
            key_id, {"user_id": user_id, "used": _ZERO, "request_count": 0, "last_used_at": None}
        )

    def _charge(self, position: int, event: Any) -> None:
        if event.request_id in self.logs:
            self.duplicate_charges.append(event.request_id)
        cost = event.cost.cents
        for row in (self.users.get(event.user_id), self.keys.get(event.key_id)):
            if row is not None:
                self._add(row, "used", cost)
        user = self._user_balance(event.user_id)
        self._add(user, "used", cost)
        user["request_count"] += 1
        key = self._key_balance(event.key_id, event.user_id)
        self._add(key, "used", cost)
        key["request_count"] += 1
        requested = _utc(event.requested_at)
        if key["last_used_at"] is None or requested > key["last_used_at"]:
            key["last_used_at"] = requested
        self.logs[event.request_id] = {
            "position": position, "user_id": event.user_id, "key_id": event.key_id, "key_name": event.key_name,
            "model": event.model, "provider": event.provider, "endpoint": event.endpoint, "stream": event.stream,
            "input_tokens": event.input_tokens, "output_tokens": event.output_tokens,
            "cache_read_tokens": event.cache_read_tokens, "cache_write_tokens": event.cache_write_tokens,
            "cost": cost, "latency_ms": event.latency_ms, "status": event.status,
            "usage_source": event.usage_source, "created_at": requested,
        }
        for buckets, bucket in ((self.daily, requested.date().isoformat()),
                                (self.hourly, requested.strftime("%Y-%m-%dT%H:00:00Z"))):
            row = buckets.setdefault(
                (event.user_id, bucket, event.model),
                {"requests": 0, "failed": 0, "prompt_tokens": 0, "completion_tokens": 0, "cache_read_tokens": 0,
                 "cache_write_tokens": 0, "cost": _ZERO},
            )
            row["requests"] += 1
            row["failed"] += event.status != RequestStatus.SUCCESS.value
            row["prompt_tokens"] += event.input_tokens + event.cache_read_tokens + event.cache_write_tokens
            row["completion_tokens"] += event.output_tokens
            row["cache_read_tokens"] += event.cache_read_tokens
            row["cache_write_tokens"] += event.cache_write_tokens
            self._add(row, "cost", cost)


def _limits(event: Any) -> dict[str, Any]:
    return {"rpm": event.rpm, "tpm": event.tpm, "max_concurrency": event.max_concurrency}


def models_of(stored: Any) -> list[str] | None:
    """``ts_keys.models`` as stored (JSON text), for comparison."""
    return None if stored is None else list(json.loads(stored))
