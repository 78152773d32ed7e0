"""``ledger verify`` checks every value it derives: change any column of any derived table
in the database, and it names the table, the row and the column; drop or add a row, and
it says so. On SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from domain.charges import RequestStatus
from domain.grants import GrantReason
from domain.keys import KeyStatus
from domain.money import Money
from domain.rates import Limits
from domain.users import Role, Status
from ledger import Database, Hold, Ledger, commands
from ledger.database import to_datetime, to_decimal, to_uuid
from projections.store import Runner
from projections.verify import verify
from tests.ledger.helpers import charge, facts, register

# Every derived table, its key, and each column verify must compare.
TABLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "ts_users": (("user_id",), ("username", "username_key", "name", "email", "role", "status", "password_hash",
                                "invite_code", "invited_by", "created_at", "granted", "used", "held", "holds",
                                "rpm", "tpm", "max_concurrency")),
    "ts_keys": (("key_id",), ("user_id", "digest", "prefix", "name", "status", "quota", "models", "plan_id",
                              "expires_at", "created_at", "used", "held", "holds", "rpm", "tpm",
                              "max_concurrency")),
    "proj_user_balances": (("user_id",), ("quota", "used", "request_count")),
    "proj_key_balances": (("key_id",), ("user_id", "used", "request_count", "last_used_at")),
    "proj_request_logs": (("request_id",), ("position", "user_id", "key_id", "key_name", "model", "provider",
                                            "endpoint", "stream", "input_tokens", "output_tokens", "cache_read_tokens",
                                            "cache_write_tokens", "cost", "latency_ms", "status", "usage_source",
                                            "created_at")),
    "proj_usage_daily": (("user_id", "day", "model"), ("requests", "failed", "prompt_tokens", "completion_tokens",
                                                        "cache_read_tokens", "cache_write_tokens", "cost")),
    "proj_usage_hourly": (("user_id", "hour", "model"), ("requests", "failed", "prompt_tokens", "completion_tokens",
                                                          "cache_read_tokens", "cache_write_tokens", "cost")),
}
_MONEY = {"granted", "used", "held", "quota", "cost"}
_TIME = {"created_at", "expires_at", "last_used_at"}
_UUID = {"user_id", "key_id", "invited_by"}
_INT = {"holds", "rpm", "tpm", "max_concurrency", "plan_id", "request_count", "position", "input_tokens", "output_tokens", "cache_read_tokens",
        "cache_write_tokens", "latency_ms", "requests", "failed", "prompt_tokens", "completion_tokens"}


def tampered(column: str, value: Any) -> Any:
    """A different value of the column's own type (also for a column that was null)."""
    if column in _MONEY:
        return Decimal(1) if value is None else to_decimal(value) + Decimal("0.001")
    if column in _TIME:
        return datetime(2030, 1, 1, tzinfo=timezone.utc) if value is None else to_datetime(value) + timedelta(seconds=1)
    if column in _UUID:
        return uuid.uuid4()
    if column in _INT:
        return 7 if value is None else int(value) + 1
    if column == "stream":
        return not bool(value)
    if column == "models":
        return json.dumps(["tampered"])
    return "tampered" if value is None else f"{value}x"


@pytest.fixture
def audited(database_url: str) -> Iterator[Ledger]:
    """A ledger with every kind of row, and every column filled somewhere, all verified."""
    ledger = Ledger(Database.from_url(database_url))
    alice = register(ledger, "alice", quota="100")
    code = ledger.read(lambda q: q.user_by_id(alice))["invite_code"]
    bob = register(ledger, "bob", quota="50", inviter=code)
    ledger.run(commands.ChangeProfile(bob, "Bob B.", "bob@example.com"))
    ledger.run(commands.AdministerUser(bob, Status.ACTIVE, Role.ADMIN))
    ledger.run(commands.AdministerUser(alice, None, None, Limits(rpm=600, tpm=None, max_concurrency=8)))
    ledger.run(commands.GrantQuota(alice, Money("0.25"), GrantReason.ADMIN, "", "admin:t"))
    key = ledger.run(commands.CreateKey(alice, "main", "digest-main", "tsk-main", Money(80), ["gpt-test"], 1,
                                        datetime.now(timezone.utc) + timedelta(days=30)))
    ledger.run(commands.CreateKey(bob, "spare", "digest-spare", "tsk-spar", None, None, None, None))
    for n in range(4):
        ledger.admit(Hold(facts(f"r{n}", alice, key), Money(5), ledger.instance_id))
        ledger.settle(charge(f"r{n}", alice, key, tokens=37 * (n + 1), reserved="5",
                             status=RequestStatus.ERROR if n == 3 else RequestStatus.SUCCESS))
    ledger.admit(Hold(facts("open", alice, key), Money(2), ledger.instance_id))  # a hold in flight
    ledger.run(commands.UpdateKey(alice, key, name="renamed", status=KeyStatus.ACTIVE,
                                  limits=Limits(rpm=None, tpm=100000, max_concurrency=None)))
    Runner(ledger.db, ledger.log).catch_up()
    assert verify(ledger.db, ledger.log) == []
    yield ledger
    ledger.close()


def _one_row(ledger: Ledger, table: str, keys: tuple[str, ...]) -> dict[str, Any]:
    conn = ledger.db.connect()
    try:
        cur = conn.cursor()
        cur.execute(f"SELECT * FROM {table} ORDER BY {', '.join(keys)}")
        return dict(cur.fetchall()[0])
    finally:
        conn.close()


def _write(ledger: Ledger, statement: str, params: list[Any]) -> None:
    conn = ledger.db.connect()
    try:
        conn.cursor().execute(ledger.db.sql(statement), params)
    finally:
        conn.close()


@pytest.mark.parametrize("table", list(TABLES))
def test_every_derived_column_is_checked(audited: Ledger, table: str) -> None:
    keys, columns = TABLES[table]
    row = _one_row(audited, table, keys)
    where = " AND ".join(f"{k} = %s" for k in keys)
    key_values = [row[k] for k in keys]
    shown = " ".join(str(to_uuid(v)) if k.endswith("_id") and k != "request_id" else str(v) for k, v in zip(keys, key_values, strict=True))
    for column in columns:
        _write(audited, f"UPDATE {table} SET {column} = %s WHERE {where}", [tampered(column, row[column]), *key_values])
        problems = verify(audited.db, audited.log)
        named = [line for line in problems if line.startswith(f"{table} {shown} {column}: events say")]
        assert named, f"{table}.{column} was changed and verify said {problems}"
        _write(audited, f"UPDATE {table} SET {column} = %s WHERE {where}", [row[column], *key_values])
    assert verify(audited.db, audited.log) == []


@pytest.mark.parametrize("table", list(TABLES))
def test_missing_and_extra_rows_are_reported(audited: Ledger, table: str) -> None:
    keys = TABLES[table][0]
    row = _one_row(audited, table, keys)
    names = ", ".join(row)
    _write(audited, f"DELETE FROM {table} WHERE {' AND '.join(f'{k} = %s' for k in keys)}", [row[k] for k in keys])
    assert any(line.endswith(": missing") and line.startswith(table) for line in verify(audited.db, audited.log))
    unique = (*keys, "username_key", "invite_code", "digest")
    extra = {column: tampered(column, value) if column in unique else value for column, value in row.items()}
    _write(audited, f"INSERT INTO {table} ({names}) VALUES ({', '.join(['%s'] * len(row))})", list(extra.values()))
    _write(audited, f"INSERT INTO {table} ({names}) VALUES ({', '.join(['%s'] * len(row))})", list(row.values()))
    assert [line for line in verify(audited.db, audited.log) if line.endswith("not in the ledger")]


def test_the_cli_names_a_difference_and_exits_1(audited: Ledger) -> None:
    _write(audited, "UPDATE proj_request_logs SET latency_ms = latency_ms + 1 WHERE request_id = %s", ["r2"])
    result = subprocess.run([sys.executable, "-m", "edge.cli", "ledger", "verify"], capture_output=True, text=True,
                            env={"TOKENSEA_DATABASE_URL": audited.db.url, "PATH": "/usr/bin:/bin"}, check=False)
    assert result.returncode == 1
    assert result.stdout.startswith("proj_request_logs r2 latency_ms: events say")
    assert "1 difference" in result.stderr
