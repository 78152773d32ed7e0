"""One row per request, as ``GET /api/usage/logs`` shows it.

A row never changes once written, so a rebuild from a checkpoint replaces only the rows
past it (``immutable``). On PostgreSQL the table is partitioned by the month of
``created_at`` (partitions ``<table>_yYYYYmMM``, made here as months begin), so that
retention drops whole months (``projections.retention``). Rows older than the retention
cut are never written back, not even by a rebuild from genesis.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Any

from domain.charges import Charge
from ledger.database import Database, to_datetime
from projections.base import Projection, Target

TABLE = "proj_request_logs"
TYPED_COLUMNS = (
    ("request_id", "text"), ("position", "int8"), ("user_id", "uuid"), ("key_id", "uuid"), ("key_name", "text"),
    ("model", "text"), ("provider", "text"), ("endpoint", "text"), ("stream", "bool"), ("input_tokens", "int4"),
    ("output_tokens", "int4"), ("cache_read_tokens", "int4"), ("cache_write_tokens", "int4"), ("cost", "numeric"),
    ("latency_ms", "int4"), ("status", "text"), ("usage_source", "text"), ("created_at", "timestamptz"),
)
COLUMNS = tuple(name for name, _ in TYPED_COLUMNS)
_DEFINITION = (
    "request_id TEXT {key}, position BIGINT NOT NULL, user_id {uuid} NOT NULL, "
    "key_id {uuid} NOT NULL, key_name TEXT NOT NULL, model TEXT NOT NULL, provider TEXT NOT NULL, "
    "endpoint TEXT NOT NULL, stream BOOLEAN NOT NULL, input_tokens INTEGER NOT NULL, "
    "output_tokens INTEGER NOT NULL, cache_read_tokens INTEGER NOT NULL, "
    "cache_write_tokens INTEGER NOT NULL, cost {money} NOT NULL, latency_ms INTEGER NOT NULL, "
    "status TEXT NOT NULL, usage_source TEXT NOT NULL, created_at {ts} NOT NULL{primary_key}"
)


def conflict_key(db: Database) -> str:
    """The table's unique key: a partitioned table's must include the partition column."""
    return "request_id, created_at" if db.is_postgres else "request_id"


def month_of(moment: datetime) -> tuple[int, int]:
    moment = to_datetime(moment)
    return moment.year, moment.month


def month_start(month: tuple[int, int]) -> datetime:
    return datetime(month[0], month[1], 1, tzinfo=timezone.utc)


def month_after(month: tuple[int, int]) -> tuple[int, int]:
    return (month[0] + month[1] // 12, month[1] % 12 + 1)


def partition_name(table: str, month: tuple[int, int]) -> str:
    return f"{table}_y{month[0]:04d}m{month[1]:02d}"


def ensure_partitions(db: Database, cur: Any, table: str, months: Iterable[tuple[int, int]]) -> None:
    """PostgreSQL: give ``table`` a partition for each month (one lookup when they exist)."""
    wanted = {partition_name(table, month): month for month in months}
    if not db.is_postgres or not wanted:
        return
    cur.execute("SELECT name FROM unnest(%s::text[]) AS name WHERE to_regclass(name) IS NULL", [sorted(wanted)])
    for row in cur.fetchall():
        month = wanted[row["name"]]
        cur.execute(
            f"CREATE TABLE IF NOT EXISTS {row['name']} PARTITION OF {table} FOR VALUES "
            f"FROM ('{month_start(month).isoformat()}') TO ('{month_start(month_after(month)).isoformat()}')"
        )


def partitions(db: Database, cur: Any, table: str) -> list[str]:
    """PostgreSQL: the names of ``table``'s partitions ([] on SQLite)."""
    if not db.is_postgres:
        return []
    cur.execute(
        "SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass(%s)",
        [table],
    )
    return [row["name"] for row in cur.fetchall()]


def retention_cut(target: Target) -> datetime | None:
    """The time before which request-log rows are dropped (None: kept forever)."""
    rows = target.select("SELECT cut FROM proj_log_retention", [])
    return to_datetime(rows[0]["cut"]) if rows else None


class RequestLogs(Projection):
    name = "request_logs"
    tables = {TABLE: _DEFINITION}
    indexes = ((TABLE, "by_user", "user_id, created_at, position"), (TABLE, "by_position", "position"))
    immutable = True

    def create(self, db: Database, cur: Any, tables: dict[str, str], generation: str, *, options: str = "",
               **placeholders: str) -> None:
        if not db.is_postgres:
            super().create(db, cur, tables, generation, key="PRIMARY KEY", primary_key="")
            return
        super().create(db, cur, tables, generation, key="NOT NULL", primary_key=", PRIMARY KEY (request_id, created_at)",
                       options=" PARTITION BY RANGE (created_at)")

    def apply(self, target: Target, events: Sequence[tuple[int, Any]]) -> None:
        cut = retention_cut(target)
        rows = [
            (
                e.request_id, position, e.user_id, e.key_id, e.key_name, e.model, e.provider, e.endpoint,
                e.stream, e.input_tokens, e.output_tokens, e.cache_read_tokens, e.cache_write_tokens,
                e.cost.cents, e.latency_ms, e.status, e.usage_source, to_datetime(e.requested_at),
            )
            for position, e in events
            if isinstance(e, Charge.TokensConsumed) and (cut is None or to_datetime(e.requested_at) >= cut)
        ]
        if not rows:
            return
        table = target[TABLE]
        ensure_partitions(target.db, target.cur, table, {month_of(row[-1]) for row in rows})
        if target.fresh:  # a rebuild's new table: nothing to conflict with, load in bulk
            target.copy(table, TYPED_COLUMNS, rows)
            return
        target.insert_new(table, TYPED_COLUMNS, rows, key=conflict_key(target.db))
