"""Release 0.1.0 (commit ee5c177): the schema as that release created it at every start.

Every statement is written so that it also runs on a database that 0.1.0 created (which
has no version table): it creates only what is missing, so such a database is upgraded in
place like a new one. Frozen: a later change is a later migration.
"""

from __future__ import annotations

from typing import Any

from alembic import context, op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TYPES = {
    "postgresql": {"uuid": "uuid", "money": "numeric", "ts": "timestamptz"},
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


_PROJECTION_STATEMENTS = (
    "CREATE TABLE IF NOT EXISTS proj_tracking (name TEXT PRIMARY KEY, position BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS proj_user_balances (user_id {uuid} PRIMARY KEY, quota {money} NOT NULL, "
    "used {money} NOT NULL, request_count INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS proj_key_balances (key_id {uuid} PRIMARY KEY, user_id {uuid} NOT NULL, "
    "used {money} NOT NULL, request_count INTEGER NOT NULL, last_used_at {ts})",
    "CREATE TABLE IF NOT EXISTS proj_request_logs (request_id TEXT PRIMARY KEY, position BIGINT NOT NULL, "
    "user_id {uuid} NOT NULL, key_id {uuid} NOT NULL, key_name TEXT NOT NULL, model TEXT NOT NULL, "
    "provider TEXT NOT NULL, endpoint TEXT NOT NULL, stream BOOLEAN NOT NULL, input_tokens INTEGER NOT NULL, "
    "output_tokens INTEGER NOT NULL, cache_read_tokens INTEGER NOT NULL, cache_write_tokens INTEGER NOT NULL, "
    "cost {money} NOT NULL, latency_ms INTEGER NOT NULL, status TEXT NOT NULL, usage_source TEXT NOT NULL, "
    "created_at {ts} NOT NULL)",
    "CREATE TABLE IF NOT EXISTS proj_usage_daily (user_id {uuid} NOT NULL, day TEXT NOT NULL, model TEXT NOT NULL, "
    "requests INTEGER NOT NULL, failed INTEGER NOT NULL, prompt_tokens BIGINT NOT NULL, "
    "completion_tokens BIGINT NOT NULL, cache_read_tokens BIGINT NOT NULL, cache_write_tokens BIGINT NOT NULL, "
    "cost {money} NOT NULL, PRIMARY KEY (user_id, day, model))",
)

_SECRETS = "CREATE TABLE IF NOT EXISTS ts_secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL)"

# eventsourcing 9.5's own tables, as its recorders create them.
_SQLITE_EVENTS = (
    "CREATE TABLE IF NOT EXISTS stored_events (originator_id TEXT, originator_version INTEGER, topic TEXT, "
    "state BLOB, PRIMARY KEY (originator_id, originator_version))"
)
_POSTGRES_EVENTS = (
    'CREATE TABLE IF NOT EXISTS "{schema}"."tokensea_events" (originator_id "uuid" NOT NULL, originator_version bigint NOT NULL, '
    "topic text, state bytea, notification_id bigserial, PRIMARY KEY (originator_id, originator_version)) WITH ("
    "autovacuum_enabled = true, autovacuum_vacuum_threshold = 100000000, autovacuum_vacuum_scale_factor = 0.5, "
    "autovacuum_analyze_threshold = 1000, autovacuum_analyze_scale_factor = 0.01)",
    """DO $$ BEGIN
        CREATE TYPE "{schema}"."stored_event_uuid" AS (originator_id "uuid", originator_version bigint, topic text, state bytea);
    EXCEPTION WHEN duplicate_object THEN NULL;
    END $$""",
    'CREATE UNIQUE INDEX IF NOT EXISTS "tokensea_events_notification_id_idx" ON "{schema}"."tokensea_events" (notification_id ASC)',
    'CREATE OR REPLACE FUNCTION "{schema}"."es_insert_events_uuid"(events "{schema}"."stored_event_uuid"[]) RETURNS SETOF bigint '
    "LANGUAGE plpgsql AS $BODY$BEGIN SET LOCAL lock_timeout = '30s'; NOTIFY \"tokensea_events\"; RETURN QUERY "
    'INSERT INTO "{schema}"."tokensea_events" AS t (originator_id, originator_version, topic, state) '
    "SELECT originator_id, originator_version, topic, state FROM unnest(events) RETURNING notification_id; END;$BODY$",
)

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


_ADMIT_FUNCTION = """
CREATE OR REPLACE FUNCTION ts_admit(p_holds jsonb, p_now timestamptz)
RETURNS TABLE (refused integer, reason text, available numeric)
LANGUAGE plpgsql AS $$
DECLARE
    p_positions integer[]; p_request_ids text[]; p_user_ids uuid[]; p_key_ids uuid[]; p_amounts numeric[];
    p_instances text[]; p_key_names text[]; p_models text[]; p_providers text[];
    p_endpoints text[]; p_streams boolean[]; p_requested timestamptz[];
    user_ids uuid[]; user_status text[]; user_left numeric[]; user_used numeric[]; user_held numeric[];
    key_ids uuid[]; key_owner uuid[]; key_status text[]; key_left numeric[];
    key_expires timestamptz[]; key_used numeric[]; key_held numeric[];
    settled_ids uuid[]; settled_cost numeric[]; settled_released numeric[];
    admitted integer[] := '{}';
    u integer; k integer;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    SELECT array_agg(n::integer), array_agg(h->>0), array_agg((h->>1)::uuid), array_agg((h->>2)::uuid),
           array_agg((h->>3)::numeric), array_agg(h->>4), array_agg(h->>5),
           array_agg(h->>6), array_agg(h->>7), array_agg(h->>8),
           array_agg((h->>9)::boolean), array_agg((h->>10)::timestamptz)
    INTO p_positions, p_request_ids, p_user_ids, p_key_ids, p_amounts, p_instances, p_key_names,
         p_models, p_providers, p_endpoints, p_streams, p_requested
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

    FOR i IN 1 .. coalesce(array_length(p_request_ids, 1), 0) LOOP
        u := array_position(user_ids, p_user_ids[i]);
        k := array_position(key_ids, p_key_ids[i]);
        refused := p_positions[i]; available := NULL;
        IF u IS NULL OR k IS NULL OR key_owner[k] <> p_user_ids[i] THEN
            reason := 'unknown_account';
        ELSIF user_status[u] <> 'active' THEN
            reason := 'user_disabled';
        ELSIF key_status[k] <> 'active' THEN
            reason := 'key_disabled';
        ELSIF key_expires[k] IS NOT NULL AND key_expires[k] <= p_now THEN
            reason := 'key_expired';
        ELSIF user_left[u] < p_amounts[i] THEN
            reason := 'insufficient_user_quota'; available := greatest(user_left[u], 0);
        ELSIF key_left[k] IS NOT NULL AND key_left[k] < p_amounts[i] THEN
            reason := 'insufficient_key_quota'; available := greatest(key_left[k], 0);
        ELSE
            reason := NULL;
        END IF;
        IF reason IS NOT NULL THEN
            RETURN NEXT;
            CONTINUE;
        END IF;
        user_left[u] := user_left[u] - p_amounts[i];
        user_held[u] := user_held[u] + p_amounts[i];
        key_left[k] := key_left[k] - p_amounts[i];
        key_held[k] := key_held[k] + p_amounts[i];
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
    SELECT p_request_ids[i], p_user_ids[i], p_key_ids[i], p_amounts[i], p_instances[i], p_key_names[i],
           p_models[i], p_providers[i], p_endpoints[i], p_streams[i], p_requested[i]
    FROM unnest(admitted) AS i;
END
$$
"""



_APPEND_CHARGES = """
CREATE OR REPLACE FUNCTION {schema}.ts_append_charges(p_charges jsonb, p_lock_timeout text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    p_originator_ids uuid[]; p_versions bigint[]; p_topics text[]; p_states bytea[];
    p_request_ids text[]; p_user_ids uuid[]; p_key_ids uuid[]; p_costs numeric[];
BEGIN
    PERFORM set_config('lock_timeout', p_lock_timeout, true);
    SELECT array_agg((c->>0)::uuid), array_agg((c->>1)::bigint), array_agg(c->>2),
           array_agg(decode(c->>3, 'hex')), array_agg(c->>4), array_agg((c->>5)::uuid),
           array_agg((c->>6)::uuid), array_agg((c->>7)::numeric)
    INTO p_originator_ids, p_versions, p_topics, p_states, p_request_ids, p_user_ids, p_key_ids, p_costs
    FROM (SELECT c FROM jsonb_array_elements(p_charges) WITH ORDINALITY AS x(c, n) ORDER BY n) AS x;
    LOCK TABLE {schema}.{events} IN EXCLUSIVE MODE;
    PERFORM {schema}.ts_release_holds(p_request_ids, p_user_ids, p_key_ids, p_costs);
    INSERT INTO {schema}.{events} (originator_id, originator_version, topic, state)
    SELECT * FROM unnest(p_originator_ids, p_versions, p_topics, p_states);
    PERFORM pg_notify({channel}, '');
END
$$
"""




# A rebuild in 0.1.0 gave this index a generation's name (proj_request_logs_r…_by_user):
# it is created only where no index of the table covers these columns yet.
_LOGS_INDEX = "CREATE INDEX proj_request_logs_g0_by_user ON proj_request_logs (user_id, created_at, position)"


def _has_logs_index(bind: Any, dialect: str) -> bool:
    if dialect == "postgresql":
        found = bind.exec_driver_sql(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'proj_request_logs'"
        )
    else:
        found = bind.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'proj_request_logs' AND sql IS NOT NULL"
        )
    return any("user_id, created_at" in definition for (definition,) in found)


def upgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    schema = context.config.attributes["schema"]
    types = _TYPES[dialect]
    for statement in (*_STATEMENTS, *_PROJECTION_STATEMENTS, _SECRETS):
        bind.exec_driver_sql(statement.format(**types))
    if not _has_logs_index(bind, dialect):
        bind.exec_driver_sql(_LOGS_INDEX)
    if dialect != "postgresql":
        bind.exec_driver_sql(_SQLITE_EVENTS)
        return
    for statement in _POSTGRES_EVENTS:
        bind.exec_driver_sql(statement.format(schema=schema))
    bind.exec_driver_sql(_RELEASE_FUNCTION.format(schema=f'"{schema}"'))
    bind.exec_driver_sql(_ADMIT_FUNCTION)
    bind.exec_driver_sql(
        _APPEND_CHARGES.format(schema=f'"{schema}"', events='"tokensea_events"', channel="'tokensea_events'")
    )

