"""Balances per user (quota granted, used, requests) and per key (used, requests,
last use), for ``/api/user/self`` and the key list."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from domain.charges import Charge
from domain.grants import Grant
from domain.keys import ApiKey
from domain.money import EXACT
from domain.users import User
from ledger.database import to_datetime, to_decimal, to_optional_datetime, to_uuid
from projections.base import Projection, Target

_ZERO = Decimal(0)


class Balances(Projection):
    name = "balances"
    tables = {
        "proj_user_balances": (
            "user_id {uuid} PRIMARY KEY, quota {money} NOT NULL, used {money} NOT NULL, "
            "request_count INTEGER NOT NULL"
        ),
        "proj_key_balances": (
            "key_id {uuid} PRIMARY KEY, user_id {uuid} NOT NULL, used {money} NOT NULL, "
            "request_count INTEGER NOT NULL, last_used_at {ts}"
        ),
    }

    def apply(self, target: Target, events: Sequence[tuple[int, Any]]) -> None:
        users: dict[UUID, list[Any]] = {}  # id -> [quota, used, count]
        keys: dict[UUID, list[Any]] = {}  # id -> [user, used, count, last_used_at]
        for _, event in events:
            if isinstance(event, User.Registered):
                users.setdefault(event.originator_id, [_ZERO, _ZERO, 0])
            elif isinstance(event, Grant.QuotaGranted):
                users.setdefault(event.user_id, [_ZERO, _ZERO, 0])
            elif isinstance(event, ApiKey.KeyCreated):
                keys.setdefault(event.originator_id, [event.user_id, _ZERO, 0, None])
            elif isinstance(event, Charge.TokensConsumed):
                users.setdefault(event.user_id, [_ZERO, _ZERO, 0])
                keys.setdefault(event.key_id, [event.user_id, _ZERO, 0, None])
        self._load(target, users, keys)
        for _, event in events:
            if isinstance(event, Grant.QuotaGranted):
                users[event.user_id][0] = EXACT.add(users[event.user_id][0], event.amount.cents)
            elif isinstance(event, Charge.TokensConsumed):
                user, key = users[event.user_id], keys[event.key_id]
                user[1] = EXACT.add(user[1], event.cost.cents)
                user[2] += 1
                key[1] = EXACT.add(key[1], event.cost.cents)
                key[2] += 1
                key[3] = _later(key[3], event.requested_at)
        target.executemany(
            f"INSERT INTO {target['proj_user_balances']} (user_id, quota, used, request_count) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT (user_id) DO UPDATE SET "
            "quota = excluded.quota, used = excluded.used, request_count = excluded.request_count",
            [(user_id, *values) for user_id, values in users.items()],
        )
        target.executemany(
            f"INSERT INTO {target['proj_key_balances']} (key_id, user_id, used, request_count, last_used_at) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (key_id) DO UPDATE SET "
            "used = excluded.used, request_count = excluded.request_count, last_used_at = excluded.last_used_at",
            [(key_id, *values) for key_id, values in keys.items()],
        )

    @staticmethod
    def _load(target: Target, users: dict[UUID, list[Any]], keys: dict[UUID, list[Any]]) -> None:
        if users:
            ids = sorted(users)
            for row in target.select(
                f"SELECT user_id, quota, used, request_count FROM {target['proj_user_balances']} "
                f"WHERE user_id IN ({target.db.in_list(len(ids))})",
                ids,
            ):
                users[to_uuid(row["user_id"])] = [to_decimal(row["quota"]), to_decimal(row["used"]), row["request_count"]]
        if keys:
            ids = sorted(keys)
            for row in target.select(
                f"SELECT key_id, user_id, used, request_count, last_used_at FROM {target['proj_key_balances']} "
                f"WHERE key_id IN ({target.db.in_list(len(ids))})",
                ids,
            ):
                keys[to_uuid(row["key_id"])] = [
                    to_uuid(row["user_id"]), to_decimal(row["used"]), row["request_count"],
                    to_optional_datetime(row["last_used_at"]),
                ]


def _later(current: datetime | None, candidate: datetime) -> datetime:
    candidate = to_datetime(candidate)
    return candidate if current is None or candidate > current else current
