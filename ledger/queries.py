"""Reads of the ledger's index tables, with values normalized to Python types.

Both backends give back the same dicts: ``UUID`` ids, ``Decimal`` money, aware
``datetime`` timestamps and ``models`` as a list (or ``None``).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any
from uuid import UUID

from domain.rates import Limits
from ledger.database import (
    Database,
    to_datetime,
    to_decimal,
    to_optional_datetime,
    to_optional_decimal,
    to_uuid,
)

_USER = (
    "user_id, username, name, email, role, status, password_hash, invite_code, invited_by, "
    "created_at, granted, used, held, rpm, tpm, max_concurrency"
)
_KEY = (
    "key_id, user_id, digest, prefix, name, status, quota, models, plan_id, expires_at, "
    "created_at, used, held, rpm, tpm, max_concurrency"
)


def _limits(row: Any) -> Limits:
    return Limits(row["rpm"], row["tpm"], row["max_concurrency"])


def _user(row: Any) -> dict[str, Any]:
    return {
        "user_id": to_uuid(row["user_id"]),
        "username": row["username"],
        "name": row["name"],
        "email": row["email"],
        "role": row["role"],
        "status": row["status"],
        "password_hash": row["password_hash"],
        "invite_code": row["invite_code"],
        "invited_by": None if row["invited_by"] is None else to_uuid(row["invited_by"]),
        "created_at": to_datetime(row["created_at"]),
        "granted": to_decimal(row["granted"]),
        "used": to_decimal(row["used"]),
        "held": to_decimal(row["held"]),
        "limits": _limits(row),
    }


def _key(row: Any) -> dict[str, Any]:
    models = row["models"]
    return {
        "key_id": to_uuid(row["key_id"]),
        "user_id": to_uuid(row["user_id"]),
        "digest": row["digest"],
        "prefix": row["prefix"],
        "name": row["name"],
        "status": row["status"],
        "quota": to_optional_decimal(row["quota"]),
        "models": None if models is None else json.loads(models),
        "plan_id": row["plan_id"],
        "expires_at": to_optional_datetime(row["expires_at"]),
        "created_at": to_datetime(row["created_at"]),
        "used": to_decimal(row["used"]),
        "held": to_decimal(row["held"]),
        "limits": _limits(row),
    }


class Queries:
    """Reads through one connection (each thread keeps its own)."""

    def __init__(self, db: Database, conn: Any) -> None:
        self.db = db
        self.conn = conn

    def _pending(self, account_id: UUID) -> tuple[Decimal, Decimal]:
        """Costs and released holds still in the ``ts_settled`` inbox for an account."""
        cost = released = Decimal(0)
        for row in self._all("SELECT cost, released FROM ts_settled WHERE account_id = %s", [account_id]):
            cost += to_decimal(row["cost"])
            released += to_decimal(row["released"])
        return cost, released

    def _effective(self, found: dict[str, Any], account_id: UUID) -> dict[str, Any]:
        cost, released = self._pending(account_id)
        return {**found, "used": found["used"] + cost, "held": found["held"] - released}

    def _one(self, statement: str, params: list[Any]) -> Any:
        cur = self.conn.cursor()
        try:
            cur.execute(self.db.sql(statement), params)
            return cur.fetchone()
        finally:
            cur.close()

    def _all(self, statement: str, params: list[Any]) -> list[Any]:
        cur = self.conn.cursor()
        try:
            cur.execute(self.db.sql(statement), params)
            return list(cur.fetchall())
        finally:
            cur.close()

    # -- users ------------------------------------------------------------------------

    def user_by_username(self, username: str) -> dict[str, Any] | None:
        row = self._one(f"SELECT {_USER} FROM ts_users WHERE username_key = %s", [username.lower()])
        return None if row is None else _user(row)

    def user_by_id(self, user_id: UUID) -> dict[str, Any] | None:
        """The user, with ``used`` and ``held`` as of now (the inbox folded in)."""
        row = self._one(f"SELECT {_USER} FROM ts_users WHERE user_id = %s", [user_id])
        return None if row is None else self._effective(_user(row), user_id)

    def user_by_invite_code(self, code: str) -> dict[str, Any] | None:
        row = self._one(f"SELECT {_USER} FROM ts_users WHERE invite_code = %s", [code])
        return None if row is None else _user(row)

    def list_users(self, offset: int, limit: int, containing: str = "") -> tuple[list[dict[str, Any]], int]:
        """Users in order of registration; with ``containing``, those whose username, name
        or email contains it (case-insensitive, as plain text: ``%`` and ``_`` are escaped)."""
        where, params = "", []
        if containing:
            pattern = "%" + containing.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            where = (" WHERE username_key LIKE %s ESCAPE '\\' OR lower(name) LIKE %s ESCAPE '\\' "
                     "OR lower(coalesce(email, '')) LIKE %s ESCAPE '\\'")
            params = [pattern] * 3
        rows = self._all(
            f"SELECT {_USER} FROM ts_users{where} ORDER BY created_at, user_id LIMIT %s OFFSET %s",
            [*params, limit, offset],
        )
        total = self._one(f"SELECT COUNT(*) AS n FROM ts_users{where}", params)["n"]
        return [_user(row) for row in rows], int(total)

    # -- keys -------------------------------------------------------------------------

    def caller_by_digest(self, digest: str) -> dict[str, Any] | None:
        """A key and the state of its owner: what authenticating a model call needs."""
        row = self._one(
            f"SELECT {', '.join('k.' + c.strip() for c in _KEY.split(','))}, u.status AS user_status "
            "FROM ts_keys k JOIN ts_users u ON u.user_id = k.user_id WHERE k.digest = %s",
            [digest],
        )
        if row is None:
            return None
        return {**_key(row), "user_status": row["user_status"]}

    def key_by_id(self, key_id: UUID) -> dict[str, Any] | None:
        """The key, with ``used`` and ``held`` as of now (the inbox folded in)."""
        row = self._one(f"SELECT {_KEY} FROM ts_keys WHERE key_id = %s", [key_id])
        return None if row is None else self._effective(_key(row), key_id)

    def list_keys(self, user_id: UUID, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        rows = self._all(
            f"SELECT {_KEY} FROM ts_keys WHERE user_id = %s AND status <> 'deleted' "
            "ORDER BY created_at DESC, key_id LIMIT %s OFFSET %s",
            [user_id, limit, offset],
        )
        total = self._one(
            "SELECT COUNT(*) AS n FROM ts_keys WHERE user_id = %s AND status <> 'deleted'", [user_id]
        )["n"]
        return [_key(row) for row in rows], int(total)

    # -- holds ------------------------------------------------------------------------

    def holds(self) -> list[dict[str, Any]]:
        return [
            {
                "request_id": row["request_id"],
                "user_id": to_uuid(row["user_id"]),
                "key_id": to_uuid(row["key_id"]),
                "amount": to_decimal(row["amount"]),
                "instance_id": row["instance_id"],
            }
            for row in self._all(
                "SELECT request_id, user_id, key_id, amount, instance_id FROM ts_holds", []
            )
        ]
