"""eventsourcing recorders that also fold each batch into the index tables.

``EventStore.put(events, ledger_events=events)`` reaches the recorder inside the
transaction that appends the events; there we apply ``ledger.effects`` on the same
cursor. On PostgreSQL we take the events-table lock *first*, so every writer acquires
locks in one order (table, users, keys) and concurrent writers cannot deadlock. On
SQLite the transaction begins ``IMMEDIATE`` so a read-then-write never hits SQLITE_BUSY.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import orjson
from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteTransaction
from eventsourcing.utils import retry
from psycopg.sql import SQL, Identifier, Literal

from domain.charges import Charge
from ledger.effects import Effects
from ledger.wire import Statement

# A batch of charges in one statement, hence one round trip and one implicit
# transaction: the same steps as the general path below (table lock, hold release into
# the ``ts_settled`` inbox by ``ts_release_holds``, the events, the notification), with a
# synchronous commit.
# The batch is one JSON parameter (see ``ts_admit`` in ``ledger.schema``); each event's
# stored state travels as hex.
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


class PostgresLedgerRecorder(PostgresApplicationRecorder):
    effects: Effects | None = None  # set by the ledger once it has built its application

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._copy = SQL(
            "COPY {schema}.{table} (originator_id, originator_version, topic, state) FROM STDIN (FORMAT BINARY)"
        ).format(schema=Identifier(self.datastore.schema), table=Identifier(self.events_table_name))
        self._search_path = SQL("SET LOCAL search_path TO {0}").format(Identifier(self.datastore.schema))
        schema = Identifier(self.datastore.schema)
        self.sql_create_statements.append(
            SQL(_APPEND_CHARGES).format(
                schema=schema, events=Identifier(self.events_table_name), channel=Literal(self.channel_name)
            )
        )
        # One call, two drivers: psycopg's ``execute`` here, libpq on the event loop's lane.
        call = SQL("SELECT {schema}.ts_append_charges({charges}::jsonb, {lock_timeout}::text)")
        self._append_charges = call.format(schema=schema, charges=SQL("%s"), lock_timeout=SQL("%s"))
        self.append_charges_statement = Statement(
            "ts_append_charges", call.format(schema=schema, charges=SQL("$1"), lock_timeout=SQL("$2")).as_string()
        )
        self.lock_timeout = f"{self.datastore.lock_timeout}s"

    @retry((InterfaceError, OperationalError), max_attempts=3, wait=0.2)
    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        """The library's insert, cheaper: a batch of charges (the hot path) is one call of
        ``ts_append_charges``; any other batch is written by a binary COPY after its
        effects.

        Same guarantees: one transaction, the table locked first (so notification ids
        are committed in order), a NOTIFY for subscribers, a synchronous commit. Both
        are several times cheaper per event than the library's array of composites,
        which it dumps in Python; callers of this ledger never use the returned ids.
        """
        events = kwargs.get("ledger_events") or ()
        if events and all(isinstance(event, Charge.TokensConsumed) for event in events):
            with self.datastore.get_connection() as conn:  # autocommit: the call is the transaction
                params = (self.charges_json(events, stored_events).decode(), self.lock_timeout)
                conn.execute(self._append_charges, params, prepare=True)
            return None
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            self._append(conn, curs, events, stored_events)
        return None

    @staticmethod
    def charges_json(charges: Sequence[Any], stored_events: Sequence[StoredEvent]) -> bytes:
        """``ts_append_charges``'s first parameter for a batch of charges (the second is
        ``lock_timeout``); also sent by the event loop, as ``append_charges_statement``."""
        return orjson.dumps(
            [
                [e.originator_id, e.originator_version, e.topic, e.state.hex(),
                 c.request_id, c.user_id, c.key_id, str(c.cost.cents)]
                for e, c in zip(stored_events, charges, strict=True)
            ]
        )

    def _append(self, conn: Any, curs: Any, events: Sequence[Any], stored_events: Sequence[StoredEvent]) -> None:
        # Pipelined: the lock, the notification and the effects are one round trip before the COPY.
        with conn.pipeline():
            self._lock_table(curs)
            self._notify_channel(curs)
            if events:
                assert self.effects is not None, "the ledger sets effects before any save"
                curs.execute(self._search_path)
                self.effects.apply(curs, events)
        with curs.copy(self._copy) as copy:
            copy.set_types(["uuid", "int8", "text", "bytea"])
            for event in stored_events:
                copy.write_row((event.originator_id, event.originator_version, event.topic, event.state))


class _ImmediateTransaction(SQLiteTransaction):
    def __enter__(self) -> SQLiteCursor:
        cursor = self.connection.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        return cursor


class SQLiteLedgerRecorder(SQLiteApplicationRecorder):
    effects: Effects | None = None  # set by the ledger once it has built its application

    @contextmanager
    def _immediate(self) -> Iterator[Any]:
        with (
            self.datastore.get_connection(commit=True) as conn,
            _ImmediateTransaction(conn, commit=True) as curs,
            curs,
        ):
            yield curs

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        with self._immediate() as cursor:
            return self._insert_events(cursor, stored_events, **kwargs)

    def _insert_events(self, c: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        events = kwargs.get("ledger_events") or ()
        if events:
            assert self.effects is not None, "the ledger sets effects before any save"
            self.effects.apply(c, events)
        return super()._insert_events(c, stored_events, **kwargs)
