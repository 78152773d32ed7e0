"""Rebuild projections from the first event into fresh tables, then swap them in.

The live tables keep answering queries (and the runner keeps updating them) while the
replay runs. Several projections rebuild in one pass over the ledger: each event is
read and decoded once. The swap happens in one transaction that holds the projections'
tracking rows: it applies the last events to the new tables, drops the old ones,
renames the new ones into place and moves the positions, so the runner resumes
exactly after them.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ledger.database import Database
from ledger.log import EventLog
from projections.base import Projection, Target
from projections.store import ensure_tracking, lock_positions

BATCH = 5000


def _prefetched(events: EventLog) -> Iterator[list[tuple[int, Any]]]:
    """Every batch of the ledger, the next one read while the caller writes this one."""
    with ThreadPoolExecutor(1, thread_name_prefix="rebuild-read") as reader:
        upcoming = reader.submit(events.read, 0, BATCH)
        while batch := upcoming.result():
            upcoming = reader.submit(events.read, batch[-1][0], BATCH)
            yield batch


def rebuild(
    db: Database,
    events: EventLog,
    projections: Sequence[Projection],
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Replay every event into new tables for ``projections``; returns events replayed."""
    generation = "r" + secrets.token_hex(4)
    fresh = [{logical: f"{logical}_{generation}" for logical in p.tables} for p in projections]
    conn = db.connect()

    def apply(cur: Any, batch: list[tuple[int, Any]]) -> None:
        for projection, tables in zip(projections, fresh, strict=True):
            projection.apply(Target(db, cur, tables, fresh=True), batch)

    try:
        ensure_tracking(db, conn, [p.name for p in projections])
        with db.transaction(conn) as cur:
            for projection, tables in zip(projections, fresh, strict=True):
                projection.create(db, cur, tables, generation)
        head, position, replayed = events.head(), 0, 0
        for batch in _prefetched(events):
            with db.transaction(conn) as cur:
                apply(cur, batch)
            position, replayed = batch[-1][0], replayed + len(batch)
            if progress is not None:
                progress(position, head)
        with db.transaction(conn) as cur:
            lock_positions(db, cur, [p.name for p in projections])
            while batch := events.read(position, BATCH):
                apply(cur, batch)
                position, replayed = batch[-1][0], replayed + len(batch)
            for projection, tables in zip(projections, fresh, strict=True):
                for logical, physical in tables.items():
                    cur.execute(f"DROP TABLE IF EXISTS {logical}")
                    cur.execute(f"ALTER TABLE {physical} RENAME TO {logical}")
                cur.execute(db.sql("UPDATE proj_tracking SET position = %s WHERE name = %s"), [position, projection.name])
        return replayed
    except BaseException:
        with db.transaction(conn) as cur:
            for tables in fresh:
                for physical in tables.values():
                    cur.execute(f"DROP TABLE IF EXISTS {physical}")
        raise
    finally:
        conn.close()
