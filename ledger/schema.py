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
from typing import Any

from psycopg.sql import SQL, Identifier

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

# Settlement's part in the index tables, on PostgreSQL: release each charge's hold and
# leave its cost in the ``ts_settled`` inbox, for the user and for the key (the released
# amount is the hold row's own). Called by ``ts_append_charges`` and by ``ledger.effects``;
# its tables are named with their schema because the events connection does not put the
# schema on its search path. PL/pgSQL rather than SQL: a session caches the plan of a
# PL/pgSQL statement, while a SQL function's body is planned again at every call (measured:
# the planning took longer than the statement itself).
_RELEASE_FUNCTION = """
CREATE OR REPLACE FUNCTION {schema}.ts_release_holds(
    p_request_ids text[], p_user_ids uuid[], p_key_ids uuid[], p_costs numeric[]
) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    WITH released AS (
        DELETE FROM {schema}.ts_holds WHERE request_id = ANY(p_request_ids) RETURNING request_id, amount
    )
    INSERT INTO {schema}.ts_settled (request_id, account_id, released, cost)
    SELECT c.request_id, a.account_id, coalesce(r.amount, 0), c.cost
    FROM unnest(p_request_ids, p_user_ids, p_key_ids, p_costs) AS c(request_id, user_id, key_id, cost)
    CROSS JOIN LATERAL (VALUES (c.user_id), (c.key_id)) AS a(account_id)
    LEFT JOIN released r ON r.request_id = c.request_id;
END
$$
"""

# Admission on PostgreSQL, in one statement: the same rule as ``admission.decide``,
# run where the rows are, so the accounts stay locked for microseconds rather than a
# round trip, and a batch costs the edge one round trip. The batch arrives as one JSON
# array of holds (one cheap parameter rather than a dozen arrays dumped element by element
# in Python), with amounts as strings so they stay exact. Holds commit with
# synchronous_commit off (see ``ledger.admission``). Answers a row per refused hold (its
# reason) and per hold admitted with an output limit of its choosing.
# Each statement of a PL/pgSQL function costs tens of microseconds however few rows it
# touches, so this one makes as few as it can: one pass unpacks the batch (with each
# hold's position, which an answer names), one statement per table locks and reads the
# accounts, the settled inbox is folded in the arrays, and each table is written once
# (measured: a lone hold's call took a fifth less).
_ADMIT_FUNCTION = """
CREATE FUNCTION ts_admit(p_holds jsonb, p_now timestamptz)
RETURNS TABLE (hold_position integer, reason text, available numeric, output_limit bigint)
LANGUAGE plpgsql AS $$
DECLARE
    p_positions integer[]; p_request_ids text[]; p_user_ids uuid[]; p_key_ids uuid[]; p_amounts numeric[];
    p_instances text[]; p_key_names text[]; p_models text[]; p_providers text[];
    p_endpoints text[]; p_streams boolean[]; p_requested timestamptz[]; p_per_token numeric[]; p_most bigint[];
    user_ids uuid[]; user_status text[]; user_left numeric[]; user_used numeric[]; user_held numeric[];
    key_ids uuid[]; key_owner uuid[]; key_status text[]; key_left numeric[];
    key_expires timestamptz[]; key_used numeric[]; key_held numeric[];
    settled_ids uuid[]; settled_cost numeric[]; settled_released numeric[];
    admitted integer[] := '{}'; reserved numeric[];
    u integer; k integer; needed numeric;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    SELECT array_agg(n::integer), array_agg(h->>0), array_agg((h->>1)::uuid), array_agg((h->>2)::uuid),
           array_agg((h->>3)::numeric), array_agg(h->>4), array_agg(h->>5),
           array_agg(h->>6), array_agg(h->>7), array_agg(h->>8),
           array_agg((h->>9)::boolean), array_agg((h->>10)::timestamptz),
           array_agg((h->>11)::numeric), array_agg((h->>12)::bigint)
    INTO p_positions, p_request_ids, p_user_ids, p_key_ids, p_amounts, p_instances, p_key_names,
         p_models, p_providers, p_endpoints, p_streams, p_requested, p_per_token, p_most
    FROM (SELECT n, h FROM jsonb_array_elements(p_holds) WITH ORDINALITY AS x(h, n) ORDER BY n) AS x;

    -- Lock and read the accounts, users first, each in id order (no deadlocks).
    SELECT array_agg(user_id), array_agg(status), array_agg(granted - used - held),
           array_agg(0::numeric), array_agg(0::numeric)
    INTO user_ids, user_status, user_left, user_used, user_held
    FROM (SELECT * FROM ts_users WHERE user_id = ANY(p_user_ids) ORDER BY user_id FOR UPDATE) AS a;
    SELECT array_agg(key_id), array_agg(user_id), array_agg(status), array_agg(quota - used - held),
           array_agg(expires_at), array_agg(0::numeric), array_agg(0::numeric)
    INTO key_ids, key_owner, key_status, key_left, key_expires, key_used, key_held
    FROM (SELECT * FROM ts_keys WHERE key_id = ANY(p_key_ids) ORDER BY key_id FOR UPDATE) AS a;

    -- Fold in what was charged since: cost moves to used, the released hold leaves held.
    WITH taken AS (
        DELETE FROM ts_settled WHERE account_id = ANY(p_user_ids || p_key_ids)
        RETURNING account_id, released, cost
    )
    SELECT array_agg(account_id), array_agg(cost), array_agg(released)
    INTO settled_ids, settled_cost, settled_released
    FROM (SELECT account_id, sum(cost) AS cost, sum(released) AS released FROM taken GROUP BY account_id) AS s;
    FOR i IN 1 .. coalesce(array_length(settled_ids, 1), 0) LOOP
        u := array_position(user_ids, settled_ids[i]);
        IF u IS NOT NULL THEN
            user_used[u] := user_used[u] + settled_cost[i];
            user_held[u] := user_held[u] - settled_released[i];
            user_left[u] := user_left[u] - settled_cost[i] + settled_released[i];
        END IF;
        k := array_position(key_ids, settled_ids[i]);
        IF k IS NOT NULL THEN
            key_used[k] := key_used[k] + settled_cost[i];
            key_held[k] := key_held[k] - settled_released[i];
            key_left[k] := key_left[k] - settled_cost[i] + settled_released[i];
        END IF;
    END LOOP;

    reserved := p_amounts;
    FOR i IN 1 .. coalesce(array_length(p_request_ids, 1), 0) LOOP
        u := array_position(user_ids, p_user_ids[i]);
        k := array_position(key_ids, p_key_ids[i]);
        hold_position := p_positions[i]; available := NULL; output_limit := NULL;
        -- With an output limit to choose, the least it can be admitted with is one token.
        needed := p_amounts[i] + coalesce(p_per_token[i], 0);
        IF u IS NULL OR k IS NULL OR key_owner[k] <> p_user_ids[i] THEN
            reason := 'unknown_account';
        ELSIF user_status[u] <> 'active' THEN
            reason := 'user_disabled';
        ELSIF key_status[k] <> 'active' THEN
            reason := 'key_disabled';
        ELSIF key_expires[k] IS NOT NULL AND key_expires[k] <= p_now THEN
            reason := 'key_expired';
        ELSIF user_left[u] < needed THEN
            reason := 'insufficient_user_quota'; available := greatest(user_left[u], 0);
        ELSIF key_left[k] IS NOT NULL AND key_left[k] < needed THEN
            reason := 'insufficient_key_quota'; available := greatest(key_left[k], 0);
        ELSE
            reason := NULL;
        END IF;
        IF reason IS NOT NULL THEN
            RETURN NEXT;
            CONTINUE;
        END IF;
        IF p_per_token[i] IS NOT NULL THEN
            -- The largest limit both accounts can pay; div() truncates exactly (a rounded
            -- quotient could round up past what the quota covers).
            output_limit := p_most[i];
            IF p_per_token[i] > 0 THEN
                output_limit := least(output_limit,
                    div(least(user_left[u], coalesce(key_left[k], user_left[u])) - p_amounts[i], p_per_token[i]));
            END IF;
            reserved[i] := p_amounts[i] + output_limit * p_per_token[i];
            RETURN NEXT;
        END IF;
        user_left[u] := user_left[u] - reserved[i];
        user_held[u] := user_held[u] + reserved[i];
        key_left[k] := key_left[k] - reserved[i];
        key_held[k] := key_held[k] + reserved[i];
        admitted := admitted || i;
    END LOOP;

    UPDATE ts_users SET used = used + a.add_used, held = held + a.add_held
    FROM unnest(user_ids, user_used, user_held) AS a(id, add_used, add_held)
    WHERE user_id = a.id AND (a.add_used <> 0 OR a.add_held <> 0);
    UPDATE ts_keys SET used = used + a.add_used, held = held + a.add_held
    FROM unnest(key_ids, key_used, key_held) AS a(id, add_used, add_held)
    WHERE key_id = a.id AND (a.add_used <> 0 OR a.add_held <> 0);
    INSERT INTO ts_holds (request_id, user_id, key_id, amount, instance_id, key_name,
                          model, provider, endpoint, stream, requested_at)
    SELECT p_request_ids[i], p_user_ids[i], p_key_ids[i], reserved[i], p_instances[i], p_key_names[i],
           p_models[i], p_providers[i], p_endpoints[i], p_streams[i], p_requested[i]
    FROM unnest(admitted) AS i;
END
$$
"""


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
        if db.is_postgres:
            # Dropped first: a new release may change what it answers, which CREATE OR
            # REPLACE cannot do.
            conn.execute("DROP FUNCTION IF EXISTS ts_admit(jsonb, timestamptz)")
            conn.execute(_ADMIT_FUNCTION)
            conn.execute(SQL(_RELEASE_FUNCTION).format(schema=Identifier(db.schema)))
    finally:
        conn.close()


# Tables rewritten by every request: a hold is inserted and deleted, two inbox rows are
# inserted and deleted, the account rows are updated per batch. Autovacuum visits a
# database once a minute at best, and until it does each lookup wades through the dead
# row versions of the last minute (measured: the inbox and hold statements ran 3x slower
# after 10 s of load). A VACUUM of these small tables takes milliseconds. It never
# truncates them: that would take an exclusive lock, and invalidate the cached plans of
# every session using the table, each time an idle deployment's holds table empties.
_CHURNING_TABLES = "ts_holds, ts_settled, ts_users, ts_keys"


def vacuum_churning_tables(db: Database, conn: Any) -> None:
    """PostgreSQL: reclaim the dead rows of the per-request tables (``conn`` in
    autocommit). Skips a table another process is vacuuming; a no-op on SQLite."""
    if db.is_postgres:
        conn.execute(f"VACUUM (SKIP_LOCKED, TRUNCATE false) {_CHURNING_TABLES}")
