"""Fold a batch of ledger events into the index tables, in the events' own transaction.

Because it runs inside the transaction that appends the events, the indexes can never
disagree with the ledger: either both change or neither does. Registrations, grants
and key changes update ``ts_users`` and ``ts_keys`` directly; a charge deletes its hold
and leaves its cost in the ``ts_settled`` inbox, which admission folds into the account
rows later (see ``ledger.schema``): the hot path never locks an account row while it
waits for its commit to reach the disk.

Money arithmetic happens in Python on rows locked ``FOR UPDATE`` (users, then keys,
each in id order: the same order admission uses, so the two never deadlock).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

from domain.charges import Charge
from domain.grants import Grant
from domain.keys import ApiKey
from domain.money import EXACT
from domain.users import User
from ledger.database import Database, to_decimal, to_optional_decimal, to_uuid

_ZERO = Decimal(0)


@dataclass
class _Row:
    values: dict[str, Any]
    is_new: bool
    changed: bool = False

    def set(self, column: str, value: Any) -> None:
        self.values[column] = value
        self.changed = True

    def add(self, column: str, amount: Decimal) -> None:
        self.set(column, EXACT.add(self.values[column], amount))


_USER_COLUMNS = (
    "user_id", "username", "username_key", "name", "email", "role", "status", "password_hash",
    "invite_code", "invited_by", "created_at", "granted", "used", "held", "rpm", "tpm", "max_concurrency",
)
_USER_MUTABLE = ("name", "email", "role", "status", "granted", "used", "held", "rpm", "tpm", "max_concurrency")
_KEY_COLUMNS = (
    "key_id", "user_id", "digest", "prefix", "name", "status", "quota", "models", "plan_id",
    "expires_at", "created_at", "used", "held", "rpm", "tpm", "max_concurrency",
)
_KEY_MUTABLE = ("name", "status", "quota", "used", "held", "rpm", "tpm", "max_concurrency")


class Effects:
    """Applies events to ``ts_users``/``ts_keys``/``ts_holds`` through a given cursor."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def apply(self, cur: Any, events: Sequence[object]) -> None:
        if not events:
            return
        charges = [event for event in events if isinstance(event, Charge.TokensConsumed)]
        others = [event for event in events if not isinstance(event, Charge.TokensConsumed)]
        if others:
            user_ids, key_ids = _touched(others)
            users = self._lock_rows(cur, "ts_users", "user_id", _USER_COLUMNS, user_ids)
            keys = self._lock_rows(cur, "ts_keys", "key_id", _KEY_COLUMNS, key_ids)
            for event in others:
                _fold(event, users, keys)
            self._write(cur, "ts_users", "user_id", _USER_COLUMNS, _USER_MUTABLE, users)
            self._write(cur, "ts_keys", "key_id", _KEY_COLUMNS, _KEY_MUTABLE, keys)
        if charges:
            self._settle(cur, charges)

    def _settle(self, cur: Any, charges: Sequence[Any]) -> None:
        """SQLite: release each charge's hold and leave its cost in the ``ts_settled``
        inbox, for the user and for the key: the released amount is the hold row's own, and
        so is the token bound whose excess over the tokens used is given back to the
        tokens-per-minute window. On PostgreSQL ``ts_append_charges`` does this."""
        assert not self.db.is_postgres, "PostgreSQL appends charges with ts_append_charges"
        released = self._take_holds(cur, [charge.request_id for charge in charges])
        rows = []
        for c in charges:
            hold = released.get(c.request_id)
            used = c.input_tokens + c.output_tokens + c.cache_read_tokens + c.cache_write_tokens
            amount, holds, refund = (_ZERO, 0, 0) if hold is None else (hold[0], 1, hold[1] - used)
            rows += [(c.request_id, account, amount, c.cost.cents, holds, refund) for account in (c.user_id, c.key_id)]
        cur.executemany(
            self.db.sql("INSERT INTO ts_settled (request_id, account_id, released, cost, holds, token_refund) "
                        "VALUES (%s, %s, %s, %s, %s, %s)"),
            rows,
        )

    def _lock_rows(
        self, cur: Any, table: str, id_column: str, columns: Sequence[str], ids: set[UUID]
    ) -> dict[UUID, _Row]:
        rows: dict[UUID, _Row] = {}
        if not ids:
            return rows
        ordered = sorted(ids)
        cur.execute(
            self.db.sql(
                f"SELECT {', '.join(columns)} FROM {table} "
                f"WHERE {id_column} IN ({self.db.in_list(len(ordered))}) "
                f"ORDER BY {id_column} FOR UPDATE"
            ),
            ordered,
        )
        for record in cur.fetchall():
            values = {column: record[column] for column in columns}
            for money in ("granted", "used", "held"):
                if money in values:
                    values[money] = to_decimal(values[money])
            if "quota" in values:
                values["quota"] = to_optional_decimal(values["quota"])
            rows[to_uuid(values[id_column])] = _Row(values, is_new=False)
        return rows

    def _take_holds(self, cur: Any, request_ids: list[str]) -> dict[str, tuple[Decimal, int]]:
        """The amount and token bound of each of ``request_ids``' holds, which are deleted."""
        if not request_ids:
            return {}
        cur.execute(
            self.db.sql(
                f"DELETE FROM ts_holds WHERE request_id IN ({self.db.in_list(len(request_ids))}) "
                "RETURNING request_id, amount, tokens"
            ),
            request_ids,
        )
        return {r["request_id"]: (to_decimal(r["amount"]), int(r["tokens"])) for r in cur.fetchall()}

    def _write(
        self,
        cur: Any,
        table: str,
        id_column: str,
        columns: Sequence[str],
        mutable: Sequence[str],
        rows: dict[UUID, _Row],
    ) -> None:
        inserts = [
            [row.values[column] for column in columns] for row in rows.values() if row.is_new
        ]
        updates = [
            [row.values[column] for column in mutable] + [row.values[id_column]]
            for row in rows.values()
            if row.changed and not row.is_new
        ]
        if inserts:
            cur.executemany(
                self.db.sql(
                    f"INSERT INTO {table} ({', '.join(columns)}) "
                    f"VALUES ({self.db.in_list(len(columns))})"
                ),
                inserts,
            )
        if updates:
            assignments = ", ".join(f"{column} = %s" for column in mutable)
            cur.executemany(
                self.db.sql(f"UPDATE {table} SET {assignments} WHERE {id_column} = %s"), updates
            )


def _touched(events: Sequence[object]) -> tuple[set[UUID], set[UUID]]:
    """The existing rows a batch reads: ids created in the batch are skipped later."""
    user_ids: set[UUID] = set()
    key_ids: set[UUID] = set()
    for event in events:
        if isinstance(event, User.Registered):
            continue
        if isinstance(event, (User.ProfileChanged, User.RoleChanged, User.StatusChanged, User.LimitsChanged)):
            user_ids.add(event.originator_id)
        elif isinstance(event, Grant.QuotaGranted):
            user_ids.add(event.user_id)
        elif isinstance(event, ApiKey.KeyCreated):
            continue
        elif isinstance(event, ApiKey.Event):
            key_ids.add(event.originator_id)
    return user_ids, key_ids


def _fold(event: object, users: dict[UUID, _Row], keys: dict[UUID, _Row]) -> None:
    if isinstance(event, User.Registered):
        users[event.originator_id] = _Row(
            {
                "user_id": event.originator_id,
                "username": event.username,
                "username_key": event.username.lower(),
                "name": event.username,
                "email": event.email,
                "role": event.role,
                "status": "active",
                "password_hash": event.password_hash,
                "invite_code": event.invite_code,
                "invited_by": event.invited_by,
                "created_at": event.timestamp,
                "granted": _ZERO,
                "used": _ZERO,
                "held": _ZERO,
                "rpm": None,
                "tpm": None,
                "max_concurrency": None,
            },
            is_new=True,
        )
    elif isinstance(event, User.LimitsChanged):
        _set_limits(users[event.originator_id], event)
    elif isinstance(event, User.ProfileChanged):
        user = users[event.originator_id]
        user.set("name", event.name)
        user.set("email", event.email)
    elif isinstance(event, User.RoleChanged):
        users[event.originator_id].set("role", event.role)
    elif isinstance(event, User.StatusChanged):
        users[event.originator_id].set("status", event.status)
    elif isinstance(event, Grant.QuotaGranted):
        users[event.user_id].add("granted", event.amount.cents)
    elif isinstance(event, ApiKey.KeyCreated):
        keys[event.originator_id] = _Row(
            {
                "key_id": event.originator_id,
                "user_id": event.user_id,
                "digest": event.digest,
                "prefix": event.prefix,
                "name": event.name,
                "status": "active",
                "quota": None if event.quota is None else event.quota.cents,
                "models": None if event.models is None else json.dumps(list(event.models)),
                "plan_id": event.plan_id,
                "expires_at": event.expires_at,
                "created_at": event.timestamp,
                "used": _ZERO,
                "held": _ZERO,
                "rpm": None,
                "tpm": None,
                "max_concurrency": None,
            },
            is_new=True,
        )
    elif isinstance(event, ApiKey.KeyLimitsChanged):
        _set_limits(keys[event.originator_id], event)
    elif isinstance(event, ApiKey.KeyRenamed):
        keys[event.originator_id].set("name", event.name)
    elif isinstance(event, ApiKey.KeyStatusChanged):
        keys[event.originator_id].set("status", event.status)
    elif isinstance(event, ApiKey.KeyQuotaChanged):
        keys[event.originator_id].set("quota", None if event.quota is None else event.quota.cents)
    elif isinstance(event, ApiKey.KeyDeleted):
        keys[event.originator_id].set("status", "deleted")


def _set_limits(row: _Row, event: Any) -> None:
    for column in ("rpm", "tpm", "max_concurrency"):
        row.set(column, getattr(event, column))
