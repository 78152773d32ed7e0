"""eventsourcing recorders that also fold each batch into the index tables.

``EventStore.put(events, ledger_events=events)`` reaches the recorder inside the
transaction that appends the events; there we apply ``ledger.effects`` on the same
cursor. On PostgreSQL we take the events-table lock *first*, so every writer acquires
locks in one order (table, users, keys) and concurrent writers cannot deadlock. On
SQLite the transaction begins ``IMMEDIATE`` so a read-then-write never hits SQLITE_BUSY.
A save is never retried here: after a lost answer it may have landed, and only the
caller knows whether sending it again is safe.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteTransaction
from psycopg.sql import SQL, Identifier

from domain.charges import Charge
from ledger.effects import Effects


class PostgresLedgerRecorder(PostgresApplicationRecorder):
    effects: Effects | None = None  # set by the ledger once it has built its application

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._copy = SQL(
            "COPY {schema}.{table} (originator_id, originator_version, topic, state) FROM STDIN (FORMAT BINARY)"
        ).format(schema=Identifier(self.datastore.schema), table=Identifier(self.events_table_name))
        self._search_path = SQL("SET LOCAL search_path TO {0}").format(Identifier(self.datastore.schema))

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        """The library's insert, cheaper: the effects, then the events by binary COPY.

        Same guarantees: one transaction, the table locked first (so notification ids
        are committed in order), a NOTIFY for subscribers, a synchronous commit. It is
        several times cheaper per event than the library's array of composites, which it
        dumps in Python; callers of this ledger never use the returned ids. Charges never
        come this way: they go through the group commit (``ledger.postgres_writes``).
        """
        events = kwargs.get("ledger_events") or ()
        if any(isinstance(event, Charge.TokensConsumed) for event in events):
            raise TypeError("charges are appended by the group commit (ts_append_charges), not saved")
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            self._append(conn, curs, events, stored_events)
        return None

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
