"""eventsourcing recorders that also fold each batch into the index tables.

``EventStore.put(events, ledger_events=events)`` reaches the recorder inside the
transaction that appends the events; there we apply ``ledger.effects`` on the same
cursor, and link each event into the hash chain (``ledger.chain``): its digest is
computed before the transaction, its hash after the lock (or ``BEGIN IMMEDIATE``) from
the head, so the chain follows notification order. On PostgreSQL we take the
events-table lock *first*, so every writer acquires locks in one order (table, users,
keys) and concurrent writers cannot deadlock. On SQLite the transaction begins
``IMMEDIATE`` so a read-then-write never hits SQLITE_BUSY. A save is never retried
here: after a lost answer it may have landed, and only the caller knows whether sending
it again is safe.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteTransaction
from psycopg.sql import SQL, Identifier

from domain.charges import Charge
from ledger.chain import GENESIS, digest, extend
from ledger.effects import Effects


def _digests(recorder: Any, events: Sequence[Any], stored_events: Sequence[StoredEvent]) -> list[bytes]:
    """Each stored event's digest, from its domain event (decoded if the caller gave none)."""
    if len(events) != len(stored_events):
        decode = recorder.decode
        assert decode is not None, "the ledger sets decode before any save"
        events = [decode(stored) for stored in stored_events]
    return [digest(event) for event in events]


class PostgresLedgerRecorder(PostgresApplicationRecorder):
    effects: Effects | None = None  # set by the ledger once it has built its application
    decode: Any = None  # the application's mapper's to_domain_event, likewise

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._copy = SQL(
            "COPY {schema}.{table} (originator_id, originator_version, topic, state, chain) FROM STDIN (FORMAT BINARY)"
        ).format(schema=Identifier(self.datastore.schema), table=Identifier(self.events_table_name))
        self._head = SQL("SELECT chain FROM {schema}.{table} ORDER BY notification_id DESC LIMIT 1").format(
            schema=Identifier(self.datastore.schema), table=Identifier(self.events_table_name))
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
        digests = _digests(self, events, stored_events)
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            self._append(conn, curs, events, stored_events, digests)
        return None

    def _append(self, conn: Any, curs: Any, events: Sequence[Any], stored_events: Sequence[StoredEvent],
                digests: list[bytes]) -> None:
        # Pipelined: the lock, the notification, the head and the effects are one round
        # trip before the COPY. The head is read after the lock: no one appends after it.
        with conn.cursor() as heads:
            with conn.pipeline():
                self._lock_table(curs)
                self._notify_channel(curs)
                heads.execute(self._head)
                if events:
                    assert self.effects is not None, "the ledger sets effects before any save"
                    curs.execute(self._search_path)
                    self.effects.apply(curs, events)
            head = heads.fetchone()
        hashes = extend(GENESIS if head is None else bytes(head["chain"]), digests)
        with curs.copy(self._copy) as copy:
            copy.set_types(["uuid", "int8", "text", "bytea", "bytea"])
            for event, chain in zip(stored_events, hashes, strict=True):
                copy.write_row((event.originator_id, event.originator_version, event.topic, event.state, chain))


class _ImmediateTransaction(SQLiteTransaction):
    def __enter__(self) -> SQLiteCursor:
        cursor = self.connection.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        return cursor


class SQLiteLedgerRecorder(SQLiteApplicationRecorder):
    effects: Effects | None = None  # set by the ledger once it has built its application
    decode: Any = None  # the application's mapper's to_domain_event, likewise
    _INSERT = "INSERT INTO stored_events (originator_id, originator_version, topic, state, chain) VALUES (?, ?, ?, ?, ?)"
    _HEAD = "SELECT chain FROM stored_events ORDER BY rowid DESC LIMIT 1"

    @contextmanager
    def _immediate(self) -> Iterator[Any]:
        with (
            self.datastore.get_connection(commit=True) as conn,
            _ImmediateTransaction(conn, commit=True) as curs,
            curs,
        ):
            yield curs

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        digests = _digests(self, kwargs.get("ledger_events") or (), stored_events)
        with self._immediate() as cursor:
            return self._insert_events(cursor, stored_events, digests=digests, **kwargs)

    def _insert_events(self, c: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        """The library's insert, with each event's hash: rowids (notification ids) are
        given in insertion order under the write lock, so the chain follows them."""
        events = kwargs.get("ledger_events") or ()
        digests = kwargs.get("digests")
        if digests is None:
            digests = _digests(self, events, stored_events)
        if events:
            assert self.effects is not None, "the ledger sets effects before any save"
            self.effects.apply(c, events)
        c.execute(self._HEAD)
        head = c.fetchone()
        hashes = extend(GENESIS if head is None else bytes(head["chain"]), digests)
        c.executemany(self._INSERT, [
            (s.originator_id.hex if isinstance(s.originator_id, UUID) else s.originator_id,
             s.originator_version, s.topic, s.state, chain)
            for s, chain in zip(stored_events, hashes, strict=True)
        ])
        return None
