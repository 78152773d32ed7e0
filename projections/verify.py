"""The auditor's check: recompute every derived value from the events and compare.

Every column of every table TokenSea derives from the events is compared exactly: the
ledger's index tables (``ts_users``, ``ts_keys``, whose ``held`` must equal the sum of
their holds) and the read models (balances per user and key, ``last_used_at``
included; the request log, all of its columns; daily and hourly usage with every token
kind).
Missing and extra rows are reported too. Each difference names the table, the row, the
column, what the events say and what was found.

All reads happen in one snapshot (a repeatable-read, read-only transaction on
PostgreSQL, a read transaction on SQLite), so the comparison is exact while traffic
flows: each projection is compared with the fold of the events up to its own recorded
position, and the index tables with the fold of every event in the snapshot. The fold
(``projections.audit_fold``) is written apart from the code it audits.
"""

from __future__ import annotations

from collections.abc import Callable
from copy import deepcopy
from decimal import Decimal
from typing import Any

from domain.money import EXACT, format_decimal
from ledger.database import Database, to_datetime, to_decimal, to_uuid
from ledger.log import EventLog
from projections.audit_fold import Fold, Rows, models_of

PAGE = 5000
Normalize = dict[str, Callable[[Any], Any]]


def _optional(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else convert(value)


_USERS: Normalize = {
    "username": str, "username_key": str, "name": str, "email": _optional(str), "role": str, "status": str,
    "password_hash": str, "invite_code": str, "invited_by": _optional(to_uuid), "created_at": to_datetime,
    "granted": to_decimal, "used": to_decimal, "held": to_decimal, "holds": int,
    "rpm": int, "tpm": int, "max_concurrency": int,
}
_KEYS: Normalize = {
    "user_id": to_uuid, "digest": str, "prefix": str, "name": str, "status": str, "quota": _optional(to_decimal),
    "models": models_of, "plan_id": _optional(int), "expires_at": _optional(to_datetime), "created_at": to_datetime,
    "used": to_decimal, "held": to_decimal, "holds": int, "rpm": int, "tpm": int, "max_concurrency": int,
}
_USER_BALANCES: Normalize = {"quota": to_decimal, "used": to_decimal, "request_count": int}
_KEY_BALANCES: Normalize = {"user_id": to_uuid, "used": to_decimal, "request_count": int,
                            "last_used_at": _optional(to_datetime)}
_LOGS: Normalize = {
    "position": int, "user_id": to_uuid, "key_id": to_uuid, "key_name": str, "model": str, "provider": str,
    "endpoint": str, "stream": bool, "input_tokens": int, "output_tokens": int, "cache_read_tokens": int,
    "cache_write_tokens": int, "cost": to_decimal, "latency_ms": int, "status": str, "usage_source": str,
    "created_at": to_datetime,
}
_DAILY: Normalize = {
    "requests": int, "failed": int, "prompt_tokens": int, "completion_tokens": int, "cache_read_tokens": int,
    "cache_write_tokens": int, "cost": to_decimal,
}


def _fmt(value: Any) -> str:
    if isinstance(value, Decimal):
        return format_decimal(value)
    if isinstance(value, tuple):
        return " ".join(_fmt(part) for part in value)
    return "null" if value is None else str(value)


class Diff:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def compare(self, table: str, expected: Rows, found: Rows) -> None:
        """Every expected row and column against what was found; extra rows too."""
        found = dict(found)
        for key, columns in expected.items():
            row = found.pop(key, None)
            if row is None:
                self.lines.append(f"{table} {_fmt(key)}: missing")
                continue
            for column, value in columns.items():
                if row[column] != value:
                    self.lines.append(
                        f"{table} {_fmt(key)} {column}: events say {_fmt(value)}, found {_fmt(row[column])}"
                    )
        for key in found:
            self.lines.append(f"{table} {_fmt(key)}: not in the ledger")


def verify(db: Database, events: EventLog, progress: Callable[[int, int], None] | None = None) -> list[str]:
    """Every difference between the events and what was derived from them ([] if none)."""
    conn = db.connect(read_only=True)
    diff = Diff()
    try:
        cur = conn.cursor()
        cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" if db.is_postgres else "BEGIN")
        try:
            _verify(db, events, cur, diff, progress)
        finally:
            cur.execute("ROLLBACK")
    finally:
        conn.close()
    return diff.lines


def _rows(cur: Any, db: Database, table: str, keys: tuple[str, ...], normalize: Normalize) -> Rows:
    """``table``'s rows by key (one column: its value; several: a tuple), each normalized."""
    columns = ", ".join((*keys, *normalize))
    cur.execute(db.sql(f"SELECT {columns} FROM {table}"))
    found: Rows = {}
    for record in cur.fetchall():
        key = tuple(to_uuid(record[k]) if k.endswith("_id") and k != "request_id" else record[k] for k in keys)
        found[key[0] if len(key) == 1 else key] = {
            column: convert(record[column]) if record[column] is not None else None
            for column, convert in normalize.items()
        }
    return found


def _verify(db: Database, events: EventLog, cur: Any, diff: Diff, progress: Callable[[int, int], None] | None) -> None:
    cur.execute("SELECT name, position FROM proj_tracking")
    positions = {row["name"]: int(row["position"]) for row in cur.fetchall()}
    folds: dict[str, Fold] = {}
    fold = Fold()
    head = events.head()
    while batch := events.read_with(cur, fold.position, PAGE):
        for number, event in batch:
            for name, at in positions.items():
                if name not in folds and at < number:  # the projection stops before this event
                    folds[name] = deepcopy(fold)
            fold.apply(number, event)
        if progress is not None:
            progress(fold.position, head)
    for request_id in fold.duplicate_charges:
        diff.lines.append(f"request {request_id}: charged more than once")
    _check_index(db, cur, fold, diff)
    balances = folds.get("balances", fold)
    diff.compare("proj_user_balances", balances.user_balances,
                 _rows(cur, db, "proj_user_balances", ("user_id",), _USER_BALANCES))
    diff.compare("proj_key_balances", balances.key_balances,
                 _rows(cur, db, "proj_key_balances", ("key_id",), _KEY_BALANCES))
    diff.compare("proj_request_logs", folds.get("request_logs", fold).logs,
                 _rows(cur, db, "proj_request_logs", ("request_id",), _LOGS))
    diff.compare("proj_usage_daily", folds.get("daily_usage", fold).daily,
                 _rows(cur, db, "proj_usage_daily", ("user_id", "day", "model"), _DAILY))
    diff.compare("proj_usage_hourly", folds.get("hourly_usage", fold).hourly,
                 _rows(cur, db, "proj_usage_hourly", ("user_id", "hour", "model"), _DAILY))


def _check_index(db: Database, cur: Any, fold: Fold, diff: Diff) -> None:
    """``ts_users`` and ``ts_keys``, with the inbox of charges not yet folded into their
    rows (``ledger.schema``) counted in; ``held`` and ``holds`` against the holds
    themselves. (The rate windows' levels are the operational state of admission, of
    no money and not derived from events: they are not compared.)"""
    held: dict[Any, tuple[Decimal, int]] = {}
    cur.execute("SELECT user_id, key_id, amount FROM ts_holds")
    for row in cur.fetchall():
        for account in (to_uuid(row["user_id"]), to_uuid(row["key_id"])):
            amount, count = held.get(account, (Decimal(0), 0))
            held[account] = (EXACT.add(amount, to_decimal(row["amount"])), count + 1)
    pending: dict[Any, tuple[Decimal, Decimal, int]] = {}
    cur.execute("SELECT account_id, released, cost, holds FROM ts_settled")
    for row in cur.fetchall():
        cost, released, holds = pending.get(to_uuid(row["account_id"]), (Decimal(0), Decimal(0), 0))
        pending[to_uuid(row["account_id"])] = (EXACT.add(cost, to_decimal(row["cost"])),
                                               EXACT.add(released, to_decimal(row["released"])),
                                               holds + int(row["holds"]))
    for table, key, normalize, expected in (("ts_users", "user_id", _USERS, fold.users),
                                            ("ts_keys", "key_id", _KEYS, fold.keys)):
        found = _rows(cur, db, table, (key,), normalize)
        for account, row in found.items():
            cost, released, holds = pending.get(account, (Decimal(0), Decimal(0), 0))
            row["used"] = EXACT.add(row["used"], cost)
            row["held"] = EXACT.subtract(row["held"], released)
            row["holds"] = row["holds"] - holds
        wanted = {
            account: {**columns, "held": held.get(account, (Decimal(0), 0))[0], "holds": held.get(account, (0, 0))[1]}
            for account, columns in expected.items()
        }
        diff.compare(table, wanted, found)
