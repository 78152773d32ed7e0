"""The ledger's own tables, beside eventsourcing's event table.

They are indexes of the events, written in the same transaction as the events they
derive from (see ``ledger.effects``), plus two operational tables:

- ``ts_users``, ``ts_keys``: who exists, unique usernames, invite codes and key
  digests, status, and the running totals admission needs (granted, used, held).
  Every column is a fold of the events; ``tokensea ledger verify`` recomputes them.
- ``ts_holds``: one row per admitted, not yet settled request (the reservation).
- ``ts_settled``: an inbox of charges not yet folded into their user's and key's
  ``used`` and ``held``. A charge writes here instead of updating the account rows, so
  a charge's transaction (which waits for its fsync) never holds the locks admission
  needs; admission folds the inbox into the rows it has locked anyway. So an account's
  ``used`` is the row's plus its pending ``cost``s, its ``held`` the row's minus its
  pending ``released`` amounts, and ``held`` always equals the sum of its holds.
- ``ts_instances``: one row per running edge process, with a heartbeat, so that
  recovery can tell a dead process's holds from a live one's.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ledger.database import Database

_TYPES = {
    "postgres": {"uuid": "uuid", "money": "numeric", "ts": "timestamptz"},
    "sqlite": {"uuid": "TEXT", "money": "TEXT", "ts": "TEXT"},
}

_STATEMENTS = (
    """CREATE TABLE IF NOT EXISTS ts_users (
        user_id {uuid} PRIMARY KEY,
        username TEXT NOT NULL,
        username_key TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        email TEXT,
        role TEXT NOT NULL,
        status TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        invite_code TEXT NOT NULL UNIQUE,
        invited_by {uuid},
        created_at {ts} NOT NULL,
        granted {money} NOT NULL,
        used {money} NOT NULL,
        held {money} NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS ts_keys (
        key_id {uuid} PRIMARY KEY,
        user_id {uuid} NOT NULL,
        digest TEXT NOT NULL UNIQUE,
        prefix TEXT NOT NULL,
        name TEXT NOT NULL,
        status TEXT NOT NULL,
        quota {money},
        models TEXT,
        plan_id INTEGER,
        expires_at {ts},
        created_at {ts} NOT NULL,
        used {money} NOT NULL,
        held {money} NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS ts_keys_by_user ON ts_keys (user_id, created_at)",
    """CREATE TABLE IF NOT EXISTS ts_holds (
        request_id TEXT PRIMARY KEY,
        user_id {uuid} NOT NULL,
        key_id {uuid} NOT NULL,
        amount {money} NOT NULL,
        instance_id TEXT NOT NULL,
        key_name TEXT NOT NULL,
        model TEXT NOT NULL,
        provider TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        stream BOOLEAN NOT NULL,
        requested_at {ts} NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS ts_holds_by_instance ON ts_holds (instance_id)",
    """CREATE TABLE IF NOT EXISTS ts_settled (
        request_id TEXT NOT NULL,
        account_id {uuid} NOT NULL,
        released {money} NOT NULL,
        cost {money} NOT NULL,
        PRIMARY KEY (account_id, request_id)
    )""",
    """CREATE TABLE IF NOT EXISTS ts_instances (
        instance_id TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        started_at {ts} NOT NULL,
        heartbeat_at {ts} NOT NULL
    )""",
)


@contextmanager
def creating(db: Database) -> Iterator[None]:
    """Serialize schema creation across processes and hosts.

    Concurrent ``CREATE TABLE IF NOT EXISTS`` and ``CREATE OR REPLACE FUNCTION`` (which
    eventsourcing runs when an application starts) can fail on PostgreSQL with
    "tuple concurrently updated": workers starting together take turns instead.
    """
    if not db.is_postgres:
        yield
        return
    conn = db.connect()
    try:
        conn.execute("SELECT pg_advisory_lock(7201)")
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {db.schema}")
        yield
    finally:
        conn.close()  # ends the session, and with it the lock


def create_tables(db: Database) -> None:
    """Create the ledger's tables if they are missing (idempotent)."""
    types = _TYPES[db.backend]
    conn = db.connect()
    try:
        for statement in _STATEMENTS:
            conn.execute(statement.format(**types))
    finally:
        conn.close()
