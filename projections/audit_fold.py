"""The auditor's fold: every derived row, computed from the events alone.

Written apart from the projections and the ledger's effects on purpose: an audit that
reused the code it audits would agree with its bugs. It yields, for each table that
TokenSea derives from the events, the rows (by key) and every column's value; sums of
money run in the exact decimal context.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson

from domain.charges import Charge, RequestStatus
from domain.grants import Grant
from domain.keys import ApiKey, KeyStatus
from domain.money import EXACT, format_decimal
from domain.users import Status, User
from ledger.database import to_datetime, to_decimal, to_uuid

Rows = dict[Any, dict[str, Any]]
Normalize = dict[str, Callable[[Any], Any]]
_ZERO = Decimal(0)


def _optional(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else convert(value)


def models_of(stored: Any) -> list[str] | None:
    """``ts_keys.models`` as stored (JSON text), or as a checkpoint keeps it (a list)."""
    if stored is None:
        return None
    return list(json.loads(stored)) if isinstance(stored, str) else list(stored)


# Each derived table's columns, and how a stored value becomes the fold's Python value
# (from either database, or from a checkpoint's JSON).
USERS: Normalize = {
    "username": str, "username_key": str, "name": str, "email": _optional(str), "role": str, "status": str,
    "password_hash": str, "invite_code": str, "invited_by": _optional(to_uuid), "created_at": to_datetime,
    "granted": to_decimal, "used": to_decimal, "held": to_decimal, "holds": int,
    "rpm": _optional(int), "tpm": _optional(int), "max_concurrency": _optional(int),
}
KEYS: Normalize = {
    "user_id": to_uuid, "digest": str, "prefix": str, "name": str, "status": str, "quota": _optional(to_decimal),
    "models": models_of, "plan_id": _optional(int), "expires_at": _optional(to_datetime), "created_at": to_datetime,
    "used": to_decimal, "held": to_decimal, "holds": int,
    "rpm": _optional(int), "tpm": _optional(int), "max_concurrency": _optional(int),
}
USER_BALANCES: Normalize = {"quota": to_decimal, "used": to_decimal, "request_count": int}
KEY_BALANCES: Normalize = {"user_id": to_uuid, "used": to_decimal, "request_count": int,
                           "last_used_at": _optional(to_datetime)}
LOGS: Normalize = {
    "position": int, "user_id": to_uuid, "key_id": to_uuid, "key_name": str, "model": str, "provider": str,
    "endpoint": str, "stream": bool, "input_tokens": int, "output_tokens": int, "cache_read_tokens": int,
    "cache_write_tokens": int, "cost": to_decimal, "latency_ms": int, "status": str, "usage_source": str,
    "created_at": to_datetime,
}
USAGE: Normalize = {
    "requests": int, "failed": int, "prompt_tokens": int, "completion_tokens": int, "cache_read_tokens": int,
    "cache_write_tokens": int, "cost": to_decimal,
}

# What a checkpoint keeps of the fold: every table but the request log, whose rows never
# change once written and stay in the read model itself. (fold attribute, columns, key)
KEPT: dict[str, tuple[Normalize, Callable[[Any], Any]]] = {
    "users": (USERS, to_uuid),
    "keys": (KEYS, to_uuid),
    "user_balances": (USER_BALANCES, to_uuid),
    "key_balances": (KEY_BALANCES, to_uuid),
    "daily": (USAGE, lambda key: (to_uuid(key[0]), key[1], key[2])),
    "hourly": (USAGE, lambda key: (to_uuid(key[0]), key[1], key[2])),
}


def _plain(value: Any) -> Any:
    """A fold value as JSON: exact decimal strings, ISO times, UUIDs as text."""
    if isinstance(value, Decimal):
        return format_decimal(value)
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, tuple):
        return [_plain(part) for part in value]
    return value


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
    logs: Rows = field(default_factory=dict)  # proj_request_logs, by request id (the verifier empties it per batch)
    daily: Rows = field(default_factory=dict)  # proj_usage_daily, by (user, day, model)
    hourly: Rows = field(default_factory=dict)  # proj_usage_hourly, by (user, hour, model)
    duplicate_charges: list[str] = field(default_factory=list)

    def state(self) -> bytes:
        """The fold at ``position`` without the request log, as canonical JSON (sorted
        rows and columns): the same events always give the same bytes."""
        tables = {
            name: sorted(
                ([_plain(key), {column: _plain(value) for column, value in row.items()}]
                 for key, row in getattr(self, name).items()),
                key=lambda item: orjson.dumps(item[0]),
            )
            for name in KEPT
        }
        return orjson.dumps({"position": self.position, "tables": tables}, option=orjson.OPT_SORT_KEYS)

    @classmethod
    def restore(cls, state: bytes) -> Fold:
        """The fold a checkpoint's ``state`` describes (with no request log rows)."""
        document = orjson.loads(state)
        fold = cls(position=int(document["position"]))
        for name, (columns, key_of) in KEPT.items():
            rows: Rows = getattr(fold, name)
            for key, row in document["tables"][name]:
                rows[key_of(key)] = {
                    column: None if row[column] is None else columns[column](row[column]) for column in row
                }
        return fold

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
