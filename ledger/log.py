"""Read access to the ledger's notification log, for projections and auditors."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification

from ledger.application import LedgerApplication, open_application
from ledger.database import Database


class EventLog:
    """The ledger's events in notification order (ids ascend; holes are possible)."""

    def __init__(self, db: Database, app: LedgerApplication | None = None, *, read_only: bool = False) -> None:
        self.db = db
        self._owned = app is None
        self.app = open_application(db, read_only=read_only) if app is None else app

    def read(self, after: int, limit: int) -> list[tuple[int, Any]]:
        notifications = self.app.recorder.select_notifications(after + 1, limit)
        decode = self.app.mapper.to_domain_event
        return [(n.id, decode(n)) for n in notifications]

    def read_with(self, cur: Any, after: int, limit: int) -> list[tuple[int, Any]]:
        """Like ``read``, through the caller's cursor: events seen by its snapshot."""
        if self.db.is_postgres:
            table = f"{self.db.schema}.{self.app.recorder.events_table_name}"  # type: ignore[attr-defined]
            id_column = "notification_id"
        else:
            table, id_column = "stored_events", "rowid"
        cur.execute(
            self.db.sql(
                f"SELECT {id_column} AS id, originator_id, originator_version, topic, state FROM {table} "
                f"WHERE {id_column} > %s ORDER BY {id_column} LIMIT %s"
            ),
            [after, limit],
        )
        decode = self.app.mapper.to_domain_event
        return [
            (
                int(row["id"]),
                decode(
                    Notification(
                        id=int(row["id"]),
                        originator_id=row["originator_id"] if self.db.is_postgres else UUID(row["originator_id"]),
                        originator_version=row["originator_version"],
                        topic=row["topic"],
                        state=bytes(row["state"]),
                    )
                ),
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
