"""The auditor's check: recompute everything from the events, compare, list differences.

All reads happen in one snapshot (a repeatable-read transaction on PostgreSQL, a read
transaction on SQLite), so the comparison is exact even while traffic flows: each
projection is compared with the fold of the events up to its own recorded position,
and the ledger's index tables with the fold of every event in the snapshot.

The folds here are written independently of the projections' code on purpose: an
audit that reused the code it audits would agree with its bugs.
"""

from __future__ import annotations

from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass, field
from datetime import timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

from domain.charges import Charge
from domain.money import format_decimal
from ledger.database import Database, to_decimal, to_optional_decimal, to_uuid
from ledger.log import EventLog
from ledger.replay import Totals

PAGE = 5000


@dataclass
class Expected:
    totals: Totals = field(default_factory=Totals)
    logs: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    daily: dict[tuple[UUID, str, str], list[Any]] = field(default_factory=dict)
    hourly: dict[tuple[UUID, str, str], list[Any]] = field(default_factory=dict)
    last_used: dict[UUID, Any] = field(default_factory=dict)

    def apply(self, event: Any) -> None:
        self.totals.apply(event)
        if not isinstance(event, Charge.TokensConsumed):
            return
        self.logs[event.request_id] = (
            event.cost.cents, event.status, event.input_tokens, event.output_tokens,
            event.cache_read_tokens, event.cache_write_tokens, str(event.key_id), event.model,
        )
        utc = event.requested_at.astimezone(timezone.utc)
        for buckets, bucket in ((self.daily, utc.date().isoformat()), (self.hourly, f"{utc:%Y-%m-%dT%H}:00:00Z")):
            row = buckets.setdefault((event.user_id, bucket, event.model), [0, 0, 0, 0, Decimal(0)])
            row[0] += 1
            row[1] += event.status != "success"
            row[2] += event.input_tokens + event.cache_read_tokens + event.cache_write_tokens
            row[3] += event.output_tokens
            row[4] += event.cost.cents
        previous = self.last_used.get(event.key_id)
        if previous is None or event.requested_at > previous:
            self.last_used[event.key_id] = event.requested_at


def _fmt(value: Any) -> str:
    return format_decimal(value) if isinstance(value, Decimal) else str(value)


class Diff:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def check(self, where: str, expected: Any, actual: Any) -> None:
        if expected != actual:
            self.lines.append(f"{where}: events say {_fmt(expected)}, found {_fmt(actual)}")


def verify(db: Database, events: EventLog, progress: Callable[[int, int], None] | None = None) -> list[str]:
    """Every difference between the events and what was derived from them ([] if none)."""
    conn = db.connect()
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


def _rows(cur: Any, db: Database, statement: str) -> list[Any]:
    cur.execute(db.sql(statement))
    return list(cur.fetchall())


def _verify(db: Database, events: EventLog, cur: Any, diff: Diff, progress: Callable[[int, int], None] | None) -> None:
    cur.execute("SELECT name, position FROM proj_tracking")
    positions = {row["name"]: int(row["position"]) for row in cur.fetchall()}
    checkpoints: dict[str, Expected] = {}
    expected, position = Expected(), 0
    head = events.head()
    while True:
        batch = events.read_with(cur, position, PAGE)
        if not batch:
            break
        for number, event in batch:
            for name, at in positions.items():
                if name not in checkpoints and at < number:  # the projection stops before this event
                    checkpoints[name] = deepcopy(expected)
            expected.apply(event)
            position = number
        if progress is not None:
            progress(position, head)
    for name in positions:
        checkpoints.setdefault(name, expected)
    for request_id in expected.totals.duplicate_charges:
        diff.lines.append(f"request {request_id}: charged more than once")
    _check_index(db, cur, expected, diff)
    if "balances" in checkpoints:
        _check_balances(db, cur, checkpoints["balances"], diff)
    if "request_logs" in checkpoints:
        _check_logs(db, cur, checkpoints["request_logs"], diff)
    if "daily_usage" in checkpoints:
        _check_buckets(db, cur, "proj_usage_daily", "day", checkpoints["daily_usage"].daily, diff)
    if "hourly_usage" in checkpoints:
        _check_buckets(db, cur, "proj_usage_hourly", "hour", checkpoints["hourly_usage"].hourly, diff)


def _check_index(db: Database, cur: Any, expected: Expected, diff: Diff) -> None:
    held: dict[UUID, Decimal] = {}
    for row in _rows(cur, db, "SELECT user_id, key_id, amount FROM ts_holds"):
        for account in (to_uuid(row["user_id"]), to_uuid(row["key_id"])):
            held[account] = held.get(account, Decimal(0)) + to_decimal(row["amount"])
    # Charges not yet folded into their account rows (ledger.schema: the inbox).
    pending_cost: dict[UUID, Decimal] = {}
    pending_release: dict[UUID, Decimal] = {}
    for row in _rows(cur, db, "SELECT account_id, released, cost FROM ts_settled"):
        account = to_uuid(row["account_id"])
        pending_cost[account] = pending_cost.get(account, Decimal(0)) + to_decimal(row["cost"])
        pending_release[account] = pending_release.get(account, Decimal(0)) + to_decimal(row["released"])

    def used(account: UUID, row: Any) -> Decimal:
        return to_decimal(row["used"]) + pending_cost.get(account, Decimal(0))

    def holding(account: UUID, row: Any) -> Decimal:
        return to_decimal(row["held"]) - pending_release.get(account, Decimal(0))
    users = {to_uuid(r["user_id"]): r for r in _rows(cur, db, "SELECT user_id, granted, used, held FROM ts_users")}
    for user_id, totals in expected.totals.users.items():
        row = users.get(user_id)
        if row is None:
            diff.lines.append(f"ts_users {user_id}: missing")
            continue
        diff.check(f"ts_users {user_id} granted", totals.granted, to_decimal(row["granted"]))
        diff.check(f"ts_users {user_id} used", totals.used, used(user_id, row))
        diff.check(f"ts_users {user_id} held", held.get(user_id, Decimal(0)), holding(user_id, row))
    keys = {to_uuid(r["key_id"]): r for r in _rows(cur, db, "SELECT key_id, quota, used, held FROM ts_keys")}
    for key_id, totals in expected.totals.keys.items():
        row = keys.get(key_id)
        if row is None:
            diff.lines.append(f"ts_keys {key_id}: missing")
            continue
        diff.check(f"ts_keys {key_id} used", totals.used, used(key_id, row))
        diff.check(f"ts_keys {key_id} quota", totals.quota, to_optional_decimal(row["quota"]))
        diff.check(f"ts_keys {key_id} held", held.get(key_id, Decimal(0)), holding(key_id, row))
    for extra in set(users) - set(expected.totals.users):
        diff.lines.append(f"ts_users {extra}: not in the ledger")


def _check_balances(db: Database, cur: Any, expected: Expected, diff: Diff) -> None:
    rows = {to_uuid(r["user_id"]): r for r in _rows(cur, db, "SELECT user_id, quota, used, request_count FROM proj_user_balances")}
    for user_id, totals in expected.totals.users.items():
        row = rows.pop(user_id, None)
        if row is None:
            diff.lines.append(f"balances user {user_id}: missing")
            continue
        diff.check(f"balances user {user_id} quota", totals.granted, to_decimal(row["quota"]))
        diff.check(f"balances user {user_id} usedQuota", totals.used, to_decimal(row["used"]))
        diff.check(f"balances user {user_id} requestCount", totals.requests, int(row["request_count"]))
    for extra in rows:
        diff.lines.append(f"balances user {extra}: not in the ledger")
    keys = {to_uuid(r["key_id"]): r for r in _rows(cur, db, "SELECT key_id, used, request_count FROM proj_key_balances")}
    for key_id, totals in expected.totals.keys.items():
        row = keys.pop(key_id, None)
        if row is None:
            diff.lines.append(f"balances key {key_id}: missing")
            continue
        diff.check(f"balances key {key_id} usedQuota", totals.used, to_decimal(row["used"]))
        diff.check(f"balances key {key_id} requestCount", totals.requests, int(row["request_count"]))
    for extra in keys:
        diff.lines.append(f"balances key {extra}: not in the ledger")


def _check_logs(db: Database, cur: Any, expected: Expected, diff: Diff) -> None:
    rows = _rows(
        cur, db,
        "SELECT request_id, cost, status, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, "
        "key_id, model FROM proj_request_logs",
    )
    found = {
        r["request_id"]: (
            to_decimal(r["cost"]), r["status"], r["input_tokens"], r["output_tokens"], r["cache_read_tokens"],
            r["cache_write_tokens"], str(to_uuid(r["key_id"])), r["model"],
        )
        for r in rows
    }
    for request_id, values in expected.logs.items():
        if request_id not in found:
            diff.lines.append(f"request log {request_id}: missing")
        elif found[request_id] != values:
            diff.lines.append(f"request log {request_id}: events say {values}, found {found[request_id]}")
    for extra in set(found) - set(expected.logs):
        diff.lines.append(f"request log {extra}: not in the ledger")


def _check_buckets(
    db: Database, cur: Any, table: str, bucket: str, expected: dict[tuple[UUID, str, str], list[Any]], diff: Diff
) -> None:
    rows = _rows(
        cur, db,
        f"SELECT user_id, {bucket}, model, requests, failed, prompt_tokens, completion_tokens, cost FROM {table}",
    )
    found = {
        (to_uuid(r["user_id"]), r[bucket], r["model"]): [
            int(r["requests"]), int(r["failed"]), int(r["prompt_tokens"]), int(r["completion_tokens"]),
            to_decimal(r["cost"]),
        ]
        for r in rows
    }
    label = f"{'daily' if bucket == 'day' else 'hourly'} usage"
    for key, values in expected.items():
        where = f"{label} {key[0]} {key[1]} {key[2]}"
        if key not in found:
            diff.lines.append(f"{where}: missing")
        elif found[key] != values:
            diff.lines.append(f"{where}: events say {values}, found {found[key]}")
    for extra in set(found) - set(expected):
        diff.lines.append(f"{label} {extra}: not in the ledger")
