"""ts_admit chooses the output limit of a call that leaves it to the ledger (an
``OutputBound`` in the hold): the largest limit both accounts can pay. Its answer gains a
column, which CREATE OR REPLACE cannot change: it is dropped and created anew.
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

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



def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return  # SQLite applies the rule in Python (ledger.admission.decide)
    bind.exec_driver_sql("DROP FUNCTION IF EXISTS ts_admit(jsonb, timestamptz)")
    bind.exec_driver_sql(_ADMIT_FUNCTION)
