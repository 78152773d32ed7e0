"""Rate limits: requests per minute, tokens per minute and calls in flight, per user and
per key (``domain.rates``), decided by admission on the rows it locks anyway.

- ``ts_users``/``ts_keys`` gain the account's own limits (null: none), its count of
  holds, and its two buckets (their levels as of ``rate_at``, epoch seconds);
- ``ts_holds`` keeps each call's token bound, ``ts_settled`` what a charge gives back:
  its released hold (``holds``) and the tokens its bound counted beyond those it used;
- ``ts_release_holds`` and ``ts_append_charges`` carry the tokens a charge used;
- ``ts_admit`` decides the limits after the account checks and before the quota, lowers
  a chosen output limit to the room a token limit leaves, and answers ``retry_after``.

Existing holds are counted into ``holds``. The functions' signatures change, so they
are dropped and created anew.
"""

from __future__ import annotations

from alembic import context, op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_COLUMNS = {
    "postgresql": {"int": "integer", "big": "bigint", "real": "double precision"},
    "sqlite": {"int": "INTEGER", "big": "INTEGER", "real": "REAL"},
}
_ACCOUNT_COLUMNS = (
    "rpm {int}", "tpm {big}", "max_concurrency {int}", "holds {int} NOT NULL DEFAULT 0", "rate_at {real}",
    "rpm_level {real} NOT NULL DEFAULT 0", "tpm_level {real} NOT NULL DEFAULT 0",
)

_RELEASE_FUNCTION = """
CREATE FUNCTION {schema}.ts_release_holds(
    p_request_ids text[], p_user_ids uuid[], p_key_ids uuid[], p_costs numeric[], p_tokens bigint[]
) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    WITH released AS (
        DELETE FROM {schema}.ts_holds WHERE request_id = ANY(p_request_ids) RETURNING request_id, amount, tokens
    )
    INSERT INTO {schema}.ts_settled (request_id, account_id, released, cost, holds, token_refund)
    SELECT c.request_id, a.account_id, coalesce(r.amount, 0), c.cost,
           CASE WHEN r.request_id IS NULL THEN 0 ELSE 1 END, coalesce(r.tokens - c.tokens, 0)
    FROM unnest(p_request_ids, p_user_ids, p_key_ids, p_costs, p_tokens) AS c(request_id, user_id, key_id, cost, tokens)
    CROSS JOIN LATERAL (VALUES (c.user_id), (c.key_id)) AS a(account_id)
    LEFT JOIN released r ON r.request_id = c.request_id;
END
$$
"""

_APPEND_CHARGES = """
CREATE FUNCTION {schema}.ts_append_charges(p_charges jsonb, p_lock_timeout text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    p_originator_ids uuid[]; p_versions bigint[]; p_topics text[]; p_states bytea[];
    p_request_ids text[]; p_user_ids uuid[]; p_key_ids uuid[]; p_costs numeric[]; p_tokens bigint[];
BEGIN
    PERFORM set_config('lock_timeout', p_lock_timeout, true);
    SELECT array_agg((c->>0)::uuid), array_agg((c->>1)::bigint), array_agg(c->>2),
           array_agg(decode(c->>3, 'hex')), array_agg(c->>4), array_agg((c->>5)::uuid),
           array_agg((c->>6)::uuid), array_agg((c->>7)::numeric), array_agg((c->>8)::bigint)
    INTO p_originator_ids, p_versions, p_topics, p_states, p_request_ids, p_user_ids, p_key_ids, p_costs, p_tokens
    FROM (SELECT c FROM jsonb_array_elements(p_charges) WITH ORDINALITY AS x(c, n) ORDER BY n) AS x;
    LOCK TABLE {schema}.tokensea_events IN EXCLUSIVE MODE;
    PERFORM {schema}.ts_release_holds(p_request_ids, p_user_ids, p_key_ids, p_costs, p_tokens);
    INSERT INTO {schema}.tokensea_events (originator_id, originator_version, topic, state)
    SELECT * FROM unnest(p_originator_ids, p_versions, p_topics, p_states);
    PERFORM pg_notify('tokensea_events', '');
END
$$
"""

# The same rule as ``ledger.admission.decide`` (and ``domain.rates``), where the rows are.
# Per account, in arrays: the money (deltas of used and held, what is left), the limits,
# and the window (holds in flight, the buckets' levels), brought up to date the first time
# a hold of the batch touches the account (a key's limits are its own within its plan's,
# which each hold carries). Answers a row per refused hold and per chosen output limit.
_ADMIT_FUNCTION = """
CREATE FUNCTION ts_admit(p_holds jsonb, p_now timestamptz)
RETURNS TABLE (hold_position integer, reason text, available numeric, output_limit bigint, retry_after double precision)
LANGUAGE plpgsql AS $$
DECLARE
    p_positions integer[]; p_request_ids text[]; p_user_ids uuid[]; p_key_ids uuid[]; p_amounts numeric[];
    p_instances text[]; p_key_names text[]; p_models text[]; p_providers text[];
    p_endpoints text[]; p_streams boolean[]; p_requested timestamptz[]; p_per_token numeric[]; p_most bigint[];
    p_tokens bigint[]; p_plan_rpm integer[]; p_plan_tpm bigint[]; p_plan_conc integer[];
    user_ids uuid[]; user_status text[]; user_left numeric[]; user_used numeric[]; user_held numeric[];
    user_rpm integer[]; user_tpm bigint[]; user_conc integer[]; user_holds integer[];
    user_at double precision[]; user_reqs double precision[]; user_toks double precision[]; user_done boolean[];
    user_back_holds bigint[]; user_back_tokens bigint[];
    key_ids uuid[]; key_owner uuid[]; key_status text[]; key_left numeric[];
    key_expires timestamptz[]; key_used numeric[]; key_held numeric[];
    key_rpm integer[]; key_tpm bigint[]; key_conc integer[]; key_holds integer[];
    key_at double precision[]; key_reqs double precision[]; key_toks double precision[]; key_done boolean[];
    key_back_holds bigint[]; key_back_tokens bigint[];
    settled_ids uuid[]; settled_cost numeric[]; settled_released numeric[]; settled_holds bigint[]; settled_refund bigint[];
    admitted integer[] := '{}'; reserved numeric[]; counted bigint[];
    u integer; k integer; needed numeric; want bigint;
    now_s double precision := extract(epoch from p_now);
    k_rpm integer; k_tpm bigint; k_conc integer; elapsed double precision;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    SELECT array_agg(n::integer), array_agg(h->>0), array_agg((h->>1)::uuid), array_agg((h->>2)::uuid),
           array_agg((h->>3)::numeric), array_agg(h->>4), array_agg(h->>5),
           array_agg(h->>6), array_agg(h->>7), array_agg(h->>8),
           array_agg((h->>9)::boolean), array_agg((h->>10)::timestamptz),
           array_agg((h->>11)::numeric), array_agg((h->>12)::bigint), array_agg((h->>13)::bigint),
           array_agg((h->>14)::integer), array_agg((h->>15)::bigint), array_agg((h->>16)::integer)
    INTO p_positions, p_request_ids, p_user_ids, p_key_ids, p_amounts, p_instances, p_key_names,
         p_models, p_providers, p_endpoints, p_streams, p_requested, p_per_token, p_most,
         p_tokens, p_plan_rpm, p_plan_tpm, p_plan_conc
    FROM (SELECT n, h FROM jsonb_array_elements(p_holds) WITH ORDINALITY AS x(h, n) ORDER BY n) AS x;

    -- Lock and read the accounts, users first, each in id order (no deadlocks).
    SELECT array_agg(user_id), array_agg(status), array_agg(granted - used - held),
           array_agg(0::numeric), array_agg(0::numeric), array_agg(rpm), array_agg(tpm), array_agg(max_concurrency),
           array_agg(holds), array_agg(rate_at), array_agg(rpm_level), array_agg(tpm_level), array_agg(false),
           array_agg(0::bigint), array_agg(0::bigint)
    INTO user_ids, user_status, user_left, user_used, user_held, user_rpm, user_tpm, user_conc,
         user_holds, user_at, user_reqs, user_toks, user_done, user_back_holds, user_back_tokens
    FROM (SELECT * FROM ts_users WHERE user_id = ANY(p_user_ids) ORDER BY user_id FOR UPDATE) AS a;
    SELECT array_agg(key_id), array_agg(user_id), array_agg(status), array_agg(quota - used - held),
           array_agg(expires_at), array_agg(0::numeric), array_agg(0::numeric), array_agg(rpm), array_agg(tpm),
           array_agg(max_concurrency), array_agg(holds), array_agg(rate_at), array_agg(rpm_level),
           array_agg(tpm_level), array_agg(false), array_agg(0::bigint), array_agg(0::bigint)
    INTO key_ids, key_owner, key_status, key_left, key_expires, key_used, key_held, key_rpm, key_tpm, key_conc,
         key_holds, key_at, key_reqs, key_toks, key_done, key_back_holds, key_back_tokens
    FROM (SELECT * FROM ts_keys WHERE key_id = ANY(p_key_ids) ORDER BY key_id FOR UPDATE) AS a;

    -- Fold in what was charged since: cost moves to used, the released hold leaves held;
    -- holds and tokens given back wait for the window to be brought up to date.
    WITH taken AS (
        DELETE FROM ts_settled WHERE account_id = ANY(p_user_ids || p_key_ids)
        RETURNING account_id, released, cost, holds, token_refund
    )
    SELECT array_agg(account_id), array_agg(cost), array_agg(released), array_agg(holds), array_agg(refund)
    INTO settled_ids, settled_cost, settled_released, settled_holds, settled_refund
    FROM (SELECT account_id, sum(cost) AS cost, sum(released) AS released, sum(holds) AS holds,
                 sum(token_refund) AS refund FROM taken GROUP BY account_id) AS s;
    FOR i IN 1 .. coalesce(array_length(settled_ids, 1), 0) LOOP
        u := array_position(user_ids, settled_ids[i]);
        IF u IS NOT NULL THEN
            user_used[u] := user_used[u] + settled_cost[i];
            user_held[u] := user_held[u] - settled_released[i];
            user_left[u] := user_left[u] - settled_cost[i] + settled_released[i];
            user_back_holds[u] := settled_holds[i]; user_back_tokens[u] := settled_refund[i];
        END IF;
        k := array_position(key_ids, settled_ids[i]);
        IF k IS NOT NULL THEN
            key_used[k] := key_used[k] + settled_cost[i];
            key_held[k] := key_held[k] - settled_released[i];
            key_left[k] := key_left[k] - settled_cost[i] + settled_released[i];
            key_back_holds[k] := settled_holds[i]; key_back_tokens[k] := settled_refund[i];
        END IF;
    END LOOP;

    reserved := p_amounts;
    counted := p_tokens;
    FOR i IN 1 .. coalesce(array_length(p_request_ids, 1), 0) LOOP
        u := array_position(user_ids, p_user_ids[i]);
        k := array_position(key_ids, p_key_ids[i]);
        hold_position := p_positions[i]; available := NULL; output_limit := NULL; retry_after := NULL;
        needed := p_amounts[i] + coalesce(p_per_token[i], 0);  -- a chosen limit is at least one token
        want := p_tokens[i] + CASE WHEN p_per_token[i] IS NULL THEN 0 ELSE 1 END;
        IF u IS NULL OR k IS NULL OR key_owner[k] <> p_user_ids[i] THEN
            reason := 'unknown_account';
        ELSIF user_status[u] <> 'active' THEN
            reason := 'user_disabled';
        ELSIF key_status[k] <> 'active' THEN
            reason := 'key_disabled';
        ELSIF key_expires[k] IS NOT NULL AND key_expires[k] <= p_now THEN
            reason := 'key_expired';
        ELSE
            reason := NULL;
        END IF;
        IF reason IS NULL THEN
            -- A key's limits are its own within its plan's (least() passes over nulls).
            k_rpm := least(key_rpm[k], p_plan_rpm[i]); k_tpm := least(key_tpm[k], p_plan_tpm[i]);
            k_conc := least(key_conc[k], p_plan_conc[i]);
            IF NOT user_done[u] THEN  -- drain to now, then fold in the inbox (domain.rates.Window)
                elapsed := greatest(0, now_s - coalesce(user_at[u], now_s));
                user_reqs[u] := CASE WHEN user_rpm[u] IS NULL THEN 0 ELSE greatest(0, user_reqs[u] - elapsed * user_rpm[u] / 60.0) END;
                user_toks[u] := CASE WHEN user_tpm[u] IS NULL THEN 0 ELSE greatest(0, user_toks[u] - elapsed * user_tpm[u] / 60.0) END;
                user_holds[u] := greatest(0, user_holds[u] - user_back_holds[u]);
                user_toks[u] := greatest(0, user_toks[u] - user_back_tokens[u]);
                user_at[u] := now_s; user_done[u] := true;
            END IF;
            IF NOT key_done[k] THEN
                elapsed := greatest(0, now_s - coalesce(key_at[k], now_s));
                key_reqs[k] := CASE WHEN k_rpm IS NULL THEN 0 ELSE greatest(0, key_reqs[k] - elapsed * k_rpm / 60.0) END;
                key_toks[k] := CASE WHEN k_tpm IS NULL THEN 0 ELSE greatest(0, key_toks[k] - elapsed * k_tpm / 60.0) END;
                key_holds[k] := greatest(0, key_holds[k] - key_back_holds[k]);
                key_toks[k] := greatest(0, key_toks[k] - key_back_tokens[k]);
                key_at[k] := now_s; key_done[k] := true;
            END IF;
            IF user_conc[u] IS NOT NULL AND user_holds[u] >= user_conc[u] THEN
                reason := 'user_concurrency'; retry_after := 1;
            ELSIF user_rpm[u] IS NOT NULL AND user_reqs[u] + 1 > user_rpm[u] THEN
                reason := 'user_rpm'; retry_after := (user_reqs[u] + 1 - user_rpm[u]) * 60.0 / user_rpm[u];
            ELSIF user_tpm[u] IS NOT NULL AND user_toks[u] + want > user_tpm[u] THEN
                reason := 'user_tpm';
                retry_after := CASE WHEN want > user_tpm[u] THEN NULL ELSE (user_toks[u] + want - user_tpm[u]) * 60.0 / user_tpm[u] END;
            ELSIF k_conc IS NOT NULL AND key_holds[k] >= k_conc THEN
                reason := 'key_concurrency'; retry_after := 1;
            ELSIF k_rpm IS NOT NULL AND key_reqs[k] + 1 > k_rpm THEN
                reason := 'key_rpm'; retry_after := (key_reqs[k] + 1 - k_rpm) * 60.0 / k_rpm;
            ELSIF k_tpm IS NOT NULL AND key_toks[k] + want > k_tpm THEN
                reason := 'key_tpm';
                retry_after := CASE WHEN want > k_tpm THEN NULL ELSE (key_toks[k] + want - k_tpm) * 60.0 / k_tpm END;
            ELSIF user_left[u] < needed THEN
                reason := 'insufficient_user_quota'; available := greatest(user_left[u], 0);
            ELSIF key_left[k] IS NOT NULL AND key_left[k] < needed THEN
                reason := 'insufficient_key_quota'; available := greatest(key_left[k], 0);
            END IF;
        END IF;
        IF reason IS NOT NULL THEN
            RETURN NEXT;
            CONTINUE;
        END IF;
        IF p_per_token[i] IS NOT NULL THEN
            -- The largest limit both accounts can pay and their token limits leave room for;
            -- div() truncates exactly (a rounded quotient could round up past the quota).
            output_limit := p_most[i];
            IF p_per_token[i] > 0 THEN
                output_limit := least(output_limit,
                    div(least(user_left[u], coalesce(key_left[k], user_left[u])) - p_amounts[i], p_per_token[i]));
            END IF;
            IF user_tpm[u] IS NOT NULL THEN
                output_limit := least(output_limit, floor(user_tpm[u] - user_toks[u])::bigint - p_tokens[i]);
            END IF;
            IF k_tpm IS NOT NULL THEN
                output_limit := least(output_limit, floor(k_tpm - key_toks[k])::bigint - p_tokens[i]);
            END IF;
            reserved[i] := p_amounts[i] + output_limit * p_per_token[i];
            counted[i] := p_tokens[i] + output_limit;
            RETURN NEXT;
        END IF;
        user_left[u] := user_left[u] - reserved[i];
        user_held[u] := user_held[u] + reserved[i];
        key_left[k] := key_left[k] - reserved[i];
        key_held[k] := key_held[k] + reserved[i];
        user_holds[u] := user_holds[u] + 1;
        key_holds[k] := key_holds[k] + 1;
        IF user_rpm[u] IS NOT NULL THEN user_reqs[u] := user_reqs[u] + 1; END IF;
        IF user_tpm[u] IS NOT NULL THEN user_toks[u] := user_toks[u] + counted[i]; END IF;
        IF k_rpm IS NOT NULL THEN key_reqs[k] := key_reqs[k] + 1; END IF;
        IF k_tpm IS NOT NULL THEN key_toks[k] := key_toks[k] + counted[i]; END IF;
        admitted := admitted || i;
    END LOOP;

    UPDATE ts_users SET used = used + a.add_used, held = held + a.add_held, holds = a.holds, rate_at = a.at,
                        rpm_level = a.reqs, tpm_level = a.toks
    FROM unnest(user_ids, user_used, user_held, user_holds, user_at, user_reqs, user_toks, user_done)
         AS a(id, add_used, add_held, holds, at, reqs, toks, done)
    WHERE user_id = a.id AND (a.add_used <> 0 OR a.add_held <> 0 OR a.done);
    UPDATE ts_keys SET used = used + a.add_used, held = held + a.add_held, holds = a.holds, rate_at = a.at,
                       rpm_level = a.reqs, tpm_level = a.toks
    FROM unnest(key_ids, key_used, key_held, key_holds, key_at, key_reqs, key_toks, key_done)
         AS a(id, add_used, add_held, holds, at, reqs, toks, done)
    WHERE key_id = a.id AND (a.add_used <> 0 OR a.add_held <> 0 OR a.done);
    INSERT INTO ts_holds (request_id, user_id, key_id, amount, instance_id, key_name,
                          model, provider, endpoint, stream, requested_at, tokens)
    SELECT p_request_ids[i], p_user_ids[i], p_key_ids[i], reserved[i], p_instances[i], p_key_names[i],
           p_models[i], p_providers[i], p_endpoints[i], p_streams[i], p_requested[i], counted[i]
    FROM unnest(admitted) AS i;
END
$$
"""


def upgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    types = _COLUMNS[dialect]
    for table in ("ts_users", "ts_keys"):
        for column in _ACCOUNT_COLUMNS:
            bind.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {column.format(**types)}")
    bind.exec_driver_sql(f"ALTER TABLE ts_holds ADD COLUMN tokens {types['big']} NOT NULL DEFAULT 0")
    bind.exec_driver_sql(f"ALTER TABLE ts_settled ADD COLUMN holds {types['int']} NOT NULL DEFAULT 0")
    bind.exec_driver_sql(f"ALTER TABLE ts_settled ADD COLUMN token_refund {types['big']} NOT NULL DEFAULT 0")
    bind.exec_driver_sql("UPDATE ts_users SET holds = (SELECT count(*) FROM ts_holds h WHERE h.user_id = ts_users.user_id)")
    bind.exec_driver_sql("UPDATE ts_keys SET holds = (SELECT count(*) FROM ts_holds h WHERE h.key_id = ts_keys.key_id)")
    if dialect != "postgresql":
        return  # SQLite applies the rule in Python (ledger.admission, ledger.effects)
    schema = f'"{context.config.attributes["schema"]}"'
    bind.exec_driver_sql(f"DROP FUNCTION IF EXISTS {schema}.ts_append_charges(jsonb, text)")
    bind.exec_driver_sql(f"DROP FUNCTION IF EXISTS {schema}.ts_release_holds(text[], uuid[], uuid[], numeric[])")
    bind.exec_driver_sql("DROP FUNCTION IF EXISTS ts_admit(jsonb, timestamptz)")
    bind.exec_driver_sql(_RELEASE_FUNCTION.replace("{schema}", schema))
    bind.exec_driver_sql(_APPEND_CHARGES.replace("{schema}", schema))
    bind.exec_driver_sql(_ADMIT_FUNCTION)
