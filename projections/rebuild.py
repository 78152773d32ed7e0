"""Rebuild projections into fresh tables, then swap them in.

From genesis, every event is replayed. From a checkpoint (``projections.checkpoints``),
the fresh tables start as the checkpoint's state and only the events after it are
replayed; a projection whose rows never change (the request log) keeps its rows up to
the checkpoint in place, and only those past it are replaced. Either way the work is the
events replayed, plus the checkpoint's rows.

The live tables keep answering queries (and the runner keeps updating them) while the
replay runs. Several projections rebuild in one pass over the ledger: each event is
read and decoded once. The swap happens in one transaction that holds the projections'
tracking rows: it applies the last events to the new tables, drops the old ones,
renames the new ones into place (with their partitions) and moves the positions, so the
runner resumes exactly after them, and queries never see a half-built table.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ledger.database import Database
from ledger.log import EventLog
from projections.audit_fold import Fold, Rows
from projections.base import Projection, Target
from projections.logs import COLUMNS as LOG_COLUMNS
from projections.logs import ensure_partitions, partitions
from projections.store import ensure_tracking, lock_positions

BATCH = 20000  # events per transaction: a usage row is written once per batch it appears in
# The read models a checkpoint's fold holds, by table: (the fold's rows, key columns).
SEEDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "proj_user_balances": ("user_balances", ("user_id",)),
    "proj_key_balances": ("key_balances", ("key_id",)),
    "proj_usage_daily": ("daily", ("user_id", "day", "model")),
    "proj_usage_hourly": ("hourly", ("user_id", "hour", "model")),
}


def _prefetched(events: EventLog, after: int) -> Iterator[list[tuple[int, Any]]]:
    """Every batch of the ledger after ``after``, the next one read while the caller writes this one."""
    with ThreadPoolExecutor(1, thread_name_prefix="rebuild-read") as reader:
        upcoming = reader.submit(events.read, after, BATCH)
        while batch := upcoming.result():
            upcoming = reader.submit(events.read, batch[-1][0], BATCH)
            yield batch


def _seed(db: Database, cur: Any, table: str, keys: tuple[str, ...], rows: Rows) -> None:
    """Load a checkpoint's rows of one read model into its fresh table."""
    if not rows:
        return
    values = list(next(iter(rows.values())))
    columns = [*keys, *values]
    data = [(*(key if isinstance(key, tuple) else (key,)), *(row[v] for v in values)) for key, row in rows.items()]
    if not db.is_postgres:
        cur.executemany(db.sql(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({db.in_list(len(columns))})"), data)
        return
    with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in data:
            copy.write_row(row)


def _swap(db: Database, cur: Any, logical: str, physical: str) -> None:
    """Replace the live table by the fresh one; its partitions take the live names."""
    cur.execute(f"DROP TABLE IF EXISTS {logical}")
    cur.execute(f"ALTER TABLE {physical} RENAME TO {logical}")
    for partition in partitions(db, cur, logical):
        if partition.startswith(f"{physical}_"):
            cur.execute(f"ALTER TABLE {partition} RENAME TO {logical}_{partition[len(physical) + 1:]}")


def _merge_past(db: Database, cur: Any, logical: str, physical: str, after: int) -> None:
    """An immutable projection's table (the request log, the only one) rebuilt from a
    checkpoint: its rows past ``after`` are replaced by the fresh table's (which holds
    only those)."""
    cur.execute(db.sql(f"DELETE FROM {logical} WHERE position > %s"), [after])
    if db.is_postgres:
        cur.execute(f"SELECT DISTINCT created_at AT TIME ZONE 'UTC' AS at FROM {physical}")
        ensure_partitions(db, cur, logical, {(row["at"].year, row["at"].month) for row in cur.fetchall()})
    names = ", ".join(LOG_COLUMNS)
    cur.execute(f"INSERT INTO {logical} ({names}) SELECT {names} FROM {physical}")
    cur.execute(f"DROP TABLE {physical}")


def rebuild(
    db: Database,
    events: EventLog,
    projections: Sequence[Projection],
    progress: Callable[[int, int], None] | None = None,
    base: Fold | None = None,
) -> int:
    """Replay into new tables for ``projections`` from genesis, or from ``base`` (a
    checkpoint's fold); returns the number of events replayed."""
    generation = "r" + secrets.token_hex(4)
    fresh = [{logical: f"{logical}_{generation}" for logical in p.tables} for p in projections]
    start = 0 if base is None else base.position
    conn = db.connect()

    def apply(cur: Any, batch: list[tuple[int, Any]]) -> None:
        for projection, tables in zip(projections, fresh, strict=True):
            projection.apply(Target(db, cur, tables, fresh=True), batch)

    try:
        ensure_tracking(db, conn, [p.name for p in projections])
        with db.transaction(conn) as cur:
            for projection, tables in zip(projections, fresh, strict=True):
                projection.create(db, cur, tables, generation)
                for logical, physical in tables.items():
                    if base is not None and logical in SEEDS:
                        rows, keys = SEEDS[logical]
                        _seed(db, cur, physical, keys, getattr(base, rows))
        head, position, replayed = events.head(), start, 0
        for batch in _prefetched(events, start):
            with db.transaction(conn) as cur:
                apply(cur, batch)
            position, replayed = batch[-1][0], replayed + len(batch)
            if progress is not None:
                progress(position, head)
        if db.is_postgres:  # statistics before the swap, or the first queries plan on none
            with db.transaction(conn) as cur:
                for tables in fresh:
                    for physical in tables.values():
                        cur.execute(f"ANALYZE {physical}")
        with db.transaction(conn) as cur:
            lock_positions(db, cur, [p.name for p in projections])
            while batch := events.read(position, BATCH):
                apply(cur, batch)
                position, replayed = batch[-1][0], replayed + len(batch)
            for projection, tables in zip(projections, fresh, strict=True):
                for logical, physical in tables.items():
                    if base is not None and projection.immutable:
                        _merge_past(db, cur, logical, physical, start)
                    else:
                        _swap(db, cur, logical, physical)
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
