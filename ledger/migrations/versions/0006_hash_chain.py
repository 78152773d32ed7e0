"""The hash chain (``ledger.chain``): each event stores ``chain``, the sha256 of the
previous event's ``chain`` and of its own canonical form, so an export can be audited
offline and a published head pins the whole history before it.

- the events table gains ``chain`` (``bytea``/``BLOB``), filled here for the events
  already there, in notification order, in batches (each stored event decoded as
  ``ledger.log`` decodes it); then PostgreSQL makes it NOT NULL, and SQLite (which cannot
  add the constraint to an existing table) refuses an insert without it by a trigger: a
  writer of an older release fails closed instead of breaking the chain;
- ``ts_append_charges`` takes each charge's digest (hex, element 9 of its JSON), and
  after the table lock links the batch on from the head: it draws the batch's
  notification ids from the sequence, sorts them, and inserts charge ``i`` with the
  ``i``-th id and hash, so notification order is chain order by construction.

The table is locked from the ``ALTER TABLE`` to the end of the migration (one
transaction): nothing is appended between the fill and the constraint.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from alembic import context, op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BATCH = 5000

_APPEND_CHARGES = """
CREATE FUNCTION {schema}.ts_append_charges(p_charges jsonb, p_lock_timeout text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    p_originator_ids uuid[]; p_versions bigint[]; p_topics text[]; p_states bytea[];
    p_request_ids text[]; p_user_ids uuid[]; p_key_ids uuid[]; p_costs numeric[]; p_tokens bigint[];
    p_digests bytea[]; p_ids bigint[]; p_chains bytea[] := '{}'; head bytea; total integer;
BEGIN
    PERFORM set_config('lock_timeout', p_lock_timeout, true);
    SELECT array_agg((c->>0)::uuid), array_agg((c->>1)::bigint), array_agg(c->>2),
           array_agg(decode(c->>3, 'hex')), array_agg(c->>4), array_agg((c->>5)::uuid),
           array_agg((c->>6)::uuid), array_agg((c->>7)::numeric), array_agg((c->>8)::bigint),
           array_agg(decode(c->>9, 'hex'))
    INTO p_originator_ids, p_versions, p_topics, p_states, p_request_ids, p_user_ids, p_key_ids, p_costs, p_tokens,
         p_digests
    FROM (SELECT c FROM jsonb_array_elements(p_charges) WITH ORDINALITY AS x(c, n) ORDER BY n) AS x;
    total := coalesce(array_length(p_digests, 1), 0);
    LOCK TABLE {schema}.tokensea_events IN EXCLUSIVE MODE;
    PERFORM {schema}.ts_release_holds(p_request_ids, p_user_ids, p_key_ids, p_costs, p_tokens);
    -- The head: under the lock, the last event appended is the one with the largest id.
    SELECT chain INTO head FROM {schema}.tokensea_events ORDER BY notification_id DESC LIMIT 1;
    head := coalesce(head, decode(repeat('00', 32), 'hex'));  -- the genesis
    FOR i IN 1 .. total LOOP
        head := sha256(head || p_digests[i]);
        p_chains[i] := head;
    END LOOP;
    -- The batch's ids, ascending: charge i gets the i-th, so id order is chain order.
    SELECT array_agg(id ORDER BY id) INTO p_ids
    FROM (SELECT nextval({sequence}::regclass) AS id FROM generate_series(1, total)) AS s;
    INSERT INTO {schema}.tokensea_events (originator_id, originator_version, topic, state, notification_id, chain)
    SELECT * FROM unnest(p_originator_ids, p_versions, p_topics, p_states, p_ids, p_chains);
    PERFORM pg_notify('tokensea_events', '');
END
$$
"""

_NO_CHAIN_REFUSED = (
    "CREATE TRIGGER stored_events_chain_required BEFORE INSERT ON stored_events WHEN NEW.chain IS NULL "
    "BEGIN SELECT RAISE(ABORT, 'NOT NULL constraint failed: stored_events.chain'); END"
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        schema = f'"{context.config.attributes["schema"]}"'
        table = f"{schema}.tokensea_events"
        bind.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN chain bytea")
        _fill(bind, f"SELECT notification_id, originator_id, originator_version, topic, state FROM {table} "
                    "WHERE notification_id > %s ORDER BY notification_id LIMIT %s",
              f"UPDATE {table} SET chain = v.chain FROM unnest(%s::bigint[], %s::bytea[]) AS v(id, chain) "
              "WHERE notification_id = v.id", arrays=True)
        bind.exec_driver_sql(f"ALTER TABLE {table} ALTER COLUMN chain SET NOT NULL")
        sequence = bind.exec_driver_sql(
            "SELECT pg_get_serial_sequence(%s, 'notification_id')", (f"{table}",)
        ).scalar_one()
        bind.exec_driver_sql(f"DROP FUNCTION IF EXISTS {schema}.ts_append_charges(jsonb, text)")
        bind.exec_driver_sql(
            _APPEND_CHARGES.replace("{schema}", schema).replace("{sequence}", "'" + sequence.replace("'", "''") + "'")
        )
        return
    bind.exec_driver_sql("ALTER TABLE stored_events ADD COLUMN chain BLOB")
    _fill(bind, "SELECT rowid, originator_id, originator_version, topic, state FROM stored_events "
                "WHERE rowid > ? ORDER BY rowid LIMIT ?",
          "UPDATE stored_events SET chain = ? WHERE rowid = ?", arrays=False)
    bind.exec_driver_sql(_NO_CHAIN_REFUSED)


def _fill(bind: Any, select: str, update: str, *, arrays: bool) -> None:
    """Every event's hash, in notification order, a batch at a time."""
    from eventsourcing.persistence import Mapper, Notification

    from ledger.application import LedgerTranscoder
    from ledger.chain import GENESIS, digest, link

    decode = Mapper[UUID](transcoder=LedgerTranscoder()).to_domain_event
    position, previous = 0, GENESIS
    while rows := bind.exec_driver_sql(select, (position, BATCH)).fetchall():
        ids, hashes = [], []
        for row in rows:
            number, originator_id, version, topic, state = row
            event = decode(Notification(
                id=int(number),
                originator_id=originator_id if isinstance(originator_id, UUID) else UUID(originator_id),
                originator_version=version, topic=topic, state=bytes(state),
            ))
            previous = link(previous, digest(event))
            ids.append(int(number))
            hashes.append(previous)
        if arrays:
            bind.exec_driver_sql(update, (ids, hashes))
        else:
            bind.exec_driver_sql(update, list(zip(hashes, ids, strict=True)))
        position = ids[-1]

