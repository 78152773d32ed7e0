"""``[projections] log_retention_days``: request-log rows older than that are dropped from
the read model. Events, balances and the daily and hourly usage are untouched.

The cut is recorded first (``proj_log_retention``), in its own transaction, so that
``ledger verify`` knows which rows may be gone and a rebuild never writes them back.
Then, on PostgreSQL, every monthly partition wholly before the cut is dropped, and the
rows before the cut in the partition that straddles it are deleted in small batches (as
they are on SQLite), each its own short transaction, so the runner and the queries are
never held up for long.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from ledger.database import Database, to_datetime
from projections.logs import TABLE, conflict_key, month_after, month_start, partition_name, partitions

BATCH = 5000


def _months(db: Database, cur: Any) -> dict[str, tuple[int, int]]:
    """The request log's monthly partitions, by name."""
    found = {}
    for name in partitions(db, cur, TABLE):
        suffix = name[len(TABLE):]
        if len(suffix) == 9 and suffix.startswith("_y") and suffix[6] == "m":
            month = (int(suffix[2:6]), int(suffix[7:]))
            if partition_name(TABLE, month) == name:
                found[name] = month
    return found


def prune(db: Database, days: int, now: datetime | None = None) -> int:
    """Drop request-log rows older than ``days`` days; returns how many rows went."""
    cut = (now or datetime.now(timezone.utc)) - timedelta(days=days)
    conn = db.connect()
    dropped = 0
    try:
        with db.transaction(conn) as cur:
            cur.execute("SELECT cut FROM proj_log_retention")
            row = cur.fetchone()
            if row is not None and to_datetime(row["cut"]) >= cut:
                cut = to_datetime(row["cut"])  # never moves back: rows before it may be gone
            cur.execute(
                db.sql("INSERT INTO proj_log_retention (id, cut) VALUES (1, %s) ON CONFLICT (id) DO UPDATE SET cut = excluded.cut"),
                [cut],
            )
        with db.transaction(conn) as cur:
            for name, month in sorted(_months(db, cur).items()):
                if month_start(month_after(month)) <= cut:
                    cur.execute(f"SELECT count(*) AS n FROM {name}")
                    dropped += int(cur.fetchone()["n"])
                    cur.execute(f"DROP TABLE {name}")
        key = conflict_key(db)
        while True:
            with db.transaction(conn) as cur:
                cur.execute(
                    db.sql(f"DELETE FROM {TABLE} WHERE ({key}) IN "
                           f"(SELECT {key} FROM {TABLE} WHERE created_at < %s LIMIT %s)"),
                    [cut, BATCH],
                )
                count = cur.rowcount
            dropped += max(count, 0)
            if count < BATCH:
                return dropped
    finally:
        conn.close()
