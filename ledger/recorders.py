"""eventsourcing recorders that also fold each batch into the index tables.

``EventStore.put(events, ledger_events=events)`` reaches ``_insert_events`` inside the
transaction that appends the events; there we apply ``ledger.effects`` on the same
cursor. On PostgreSQL we take the events-table lock *first*, so every writer acquires
locks in one order (table, users, keys) and concurrent writers cannot deadlock. On
SQLite the transaction begins ``IMMEDIATE`` so a read-then-write never hits SQLITE_BUSY.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteTransaction
from psycopg.sql import SQL, Identifier

from ledger.effects import Effects


class PostgresLedgerRecorder(PostgresApplicationRecorder):
    effects: Effects | None = None  # set by the ledger once it has built its application

    def _insert_events(self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
        events = kwargs.get("ledger_events") or ()
        if events:
            self._lock_table(curs)
            curs.execute(SQL("SET LOCAL search_path TO {0}").format(Identifier(self.datastore.schema)))
            assert self.effects is not None, "the ledger sets effects before any save"
            self.effects.apply(curs, events)
        super()._insert_events(curs, stored_events, **kwargs)


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
