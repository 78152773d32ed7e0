"""Rebuild a projection from the first event into fresh tables, then swap them in.

The live tables keep answering queries (and the runner keeps updating them) while the
replay runs. The swap happens in one transaction that holds the projection's tracking
row: it applies the last events to the new tables, drops the old ones, renames the new
ones into place and moves the position, so the runner resumes exactly after it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from ledger.database import Database
from ledger.log import EventLog
from projections.base import Projection, Target
from projections.store import ensure_tables, lock_positions

BATCH = 5000


def rebuild(
    db: Database,
    events: EventLog,
    projection: Projection,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Replay every event into new tables for ``projection``; returns events replayed."""
    generation = "r" + secrets.token_hex(4)
    fresh = {logical: f"{logical}_{generation}" for logical in projection.tables}
    conn = db.connect()
    try:
        ensure_tables(db, conn, [projection])
        with db.transaction(conn) as cur:
            projection.create(db, cur, fresh, generation)
        head, position, replayed = events.head(), 0, 0
        while batch := events.read(position, BATCH):
            with db.transaction(conn) as cur:
                projection.apply(Target(db, cur, fresh), batch)
            position, replayed = batch[-1][0], replayed + len(batch)
            if progress is not None:
                progress(position, head)
        with db.transaction(conn) as cur:
            lock_positions(db, cur, [projection.name])
            while batch := events.read(position, BATCH):
                projection.apply(Target(db, cur, fresh), batch)
                position, replayed = batch[-1][0], replayed + len(batch)
            for logical, physical in fresh.items():
                cur.execute(f"DROP TABLE IF EXISTS {logical}")
                cur.execute(f"ALTER TABLE {physical} RENAME TO {logical}")
            cur.execute(db.sql("UPDATE proj_tracking SET position = %s WHERE name = %s"), [position, projection.name])
        return replayed
    except BaseException:
        with db.transaction(conn) as cur:
            for physical in fresh.values():
                cur.execute(f"DROP TABLE IF EXISTS {physical}")
        raise
    finally:
        conn.close()
