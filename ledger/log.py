"""Read access to the ledger's notification log, for projections and auditors."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification

from ledger.application import LedgerApplication, open_application
from ledger.chain import GENESIS
from ledger.database import Database


class EventLog:
    """The ledger's events in notification order (ids ascend; holes are possible)."""

    def __init__(self, db: Database, app: LedgerApplication | None = None, *, read_only: bool = False) -> None:
        self.db = db
        self._owned = app is None
        self.app = open_application(db, read_only=read_only) if app is None else app
        if db.is_postgres:
            self._table = f"{db.schema}.{self.app.recorder.events_table_name}"  # type: ignore[attr-defined]
            self._id = "notification_id"
        else:
            self._table, self._id = "stored_events", "rowid"

    def read(self, after: int, limit: int) -> list[tuple[int, Any]]:
        notifications = self.app.recorder.select_notifications(after + 1, limit)
        decode = self.app.mapper.to_domain_event
        return [(n.id, decode(n)) for n in notifications]

    def read_with(self, cur: Any, after: int, limit: int) -> list[tuple[int, Any]]:
        """Like ``read``, through the caller's cursor: events seen by its snapshot."""
        return [(position, event) for position, event, _ in self._select(cur, after, limit)]

    def read_chained_with(self, cur: Any, after: int, limit: int) -> list[tuple[int, Any, bytes]]:
        """Like ``read_chained``, through the caller's cursor: events seen by its snapshot."""
        return self._select(cur, after, limit)

    def read_chained(self, after: int, limit: int) -> list[tuple[int, Any, bytes]]:
        """Up to ``limit`` events after position ``after``, each with its hash in the
        ledger's chain (``ledger.chain``): ``(position, event, hash)``, positions ascending."""
        with self.app.recorder.datastore.transaction(commit=False) as cur:  # type: ignore[attr-defined]
            return self._select(cur, after, limit)

    def chain_at(self, position: int) -> bytes | None:
        """The chain's hash at ``position``: ``GENESIS`` (32 zero bytes) for 0, None if no
        event has that position (a hole, or beyond the head)."""
        with self.app.recorder.datastore.transaction(commit=False) as cur:  # type: ignore[attr-defined]
            return self.chain_at_with(cur, position)

    def chain_at_with(self, cur: Any, position: int) -> bytes | None:
        """Like ``chain_at``, through the caller's cursor."""
        if position == 0:
            return GENESIS
        cur.execute(self.db.sql(f"SELECT chain FROM {self._table} WHERE {self._id} = %s"), [position])
        row = cur.fetchone()
        return None if row is None or row["chain"] is None else bytes(row["chain"])

    def head_hash(self) -> tuple[int, bytes]:
        """The last event's position and hash; ``(0, GENESIS)`` for an empty ledger."""
        with self.app.recorder.datastore.transaction(commit=False) as cur:  # type: ignore[attr-defined]
            cur.execute(f"SELECT {self._id} AS id, chain FROM {self._table} ORDER BY {self._id} DESC LIMIT 1")
            row = cur.fetchone()
        return (0, GENESIS) if row is None else (int(row["id"]), bytes(row["chain"]))

    def _select(self, cur: Any, after: int, limit: int) -> list[tuple[int, Any, bytes]]:
        cur.execute(
            self.db.sql(
                f"SELECT {self._id} AS id, originator_id, originator_version, topic, state, chain FROM {self._table} "
                f"WHERE {self._id} > %s ORDER BY {self._id} LIMIT %s"
            ),
            [after, limit],
        )
        decode = self.app.mapper.to_domain_event
        postgres = self.db.is_postgres
        return [
            (
                int(row["id"]),
                decode(
                    Notification(
                        id=int(row["id"]),
                        originator_id=row["originator_id"] if postgres else UUID(row["originator_id"]),
                        originator_version=row["originator_version"],
                        topic=row["topic"],
                        state=bytes(row["state"]),
                    )
                ),
                bytes(row["chain"]),
            )
            for row in cur.fetchall()
        ]

    def head(self) -> int:
        return int(self.app.recorder.max_notification_id() or 0)

    @property
    def channel(self) -> str | None:
        """The PostgreSQL NOTIFY channel that announces new events (None on SQLite)."""
        return getattr(self.app.recorder, "channel_name", None) if self.db.is_postgres else None

    def close(self) -> None:
        if self._owned:
            self.app.close()
