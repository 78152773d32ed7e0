"""Checkpoints, log retention, and the request log partitioned by month.

- ``proj_checkpoints``: the derived state at a ledger position (``tokensea ledger
  checkpoint``), from which rebuilds and verification start instead of genesis.
- ``proj_log_retention``: the cut before which request-log rows may have been dropped
  (``[projections] log_retention_days``), so that ``ledger verify`` knows it.
- ``proj_request_logs`` gains an index on ``position`` (a rebuild from a checkpoint
  replaces the rows past it) and, on PostgreSQL, becomes a table partitioned by the
  month of ``created_at`` (its key becomes ``(request_id, created_at)``): retention drops
  whole months. Partitions are named ``proj_request_logs_yYYYYmMM``; the projection
  creates the next ones as requests arrive. Existing rows are moved in one statement.
"""

from __future__ import annotations

from typing import Any

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_LOG_COLUMNS = (
    "request_id TEXT NOT NULL, position BIGINT NOT NULL, user_id uuid NOT NULL, key_id uuid NOT NULL, "
    "key_name TEXT NOT NULL, model TEXT NOT NULL, provider TEXT NOT NULL, endpoint TEXT NOT NULL, "
    "stream BOOLEAN NOT NULL, input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL, "
    "cache_read_tokens INTEGER NOT NULL, cache_write_tokens INTEGER NOT NULL, cost numeric NOT NULL, "
    "latency_ms INTEGER NOT NULL, status TEXT NOT NULL, usage_source TEXT NOT NULL, created_at timestamptz NOT NULL"
)
_NAMES = (
    "request_id, position, user_id, key_id, key_name, model, provider, endpoint, stream, input_tokens, "
    "output_tokens, cache_read_tokens, cache_write_tokens, cost, latency_ms, status, usage_source, created_at"
)


def _partition_by_month(bind: Any) -> None:
    bind.exec_driver_sql("ALTER TABLE proj_request_logs RENAME TO proj_request_logs_unpartitioned")
    bind.exec_driver_sql(
        f"CREATE TABLE proj_request_logs ({_LOG_COLUMNS}, PRIMARY KEY (request_id, created_at)) "
        "PARTITION BY RANGE (created_at)"
    )
    months = bind.exec_driver_sql(
        "SELECT DISTINCT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM') AS month "
        "FROM proj_request_logs_unpartitioned"
    ).fetchall()
    for (month,) in months:
        year, number = int(month[:4]), int(month[5:])
        following = f"{year + number // 12:04d}-{number % 12 + 1:02d}"
        bind.exec_driver_sql(
            f"CREATE TABLE proj_request_logs_y{year:04d}m{number:02d} PARTITION OF proj_request_logs "
            f"FOR VALUES FROM ('{month}-01 00:00:00+00') TO ('{following}-01 00:00:00+00')"
        )
    bind.exec_driver_sql(
        f"INSERT INTO proj_request_logs ({_NAMES}) SELECT {_NAMES} FROM proj_request_logs_unpartitioned"
    )
    bind.exec_driver_sql("DROP TABLE proj_request_logs_unpartitioned")
    bind.exec_driver_sql(
        "CREATE INDEX proj_request_logs_g1_by_user ON proj_request_logs (user_id, created_at, position)"
    )


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        bind.exec_driver_sql(
            "CREATE TABLE proj_checkpoints (id BIGSERIAL PRIMARY KEY, position BIGINT NOT NULL, chain BYTEA NOT NULL, "
            "digest TEXT NOT NULL, state BYTEA NOT NULL, created_at TIMESTAMPTZ NOT NULL)"
        )
        bind.exec_driver_sql(
            "CREATE TABLE proj_log_retention (id INTEGER PRIMARY KEY CHECK (id = 1), cut TIMESTAMPTZ NOT NULL)"
        )
        _partition_by_month(bind)
    else:
        bind.exec_driver_sql(
            "CREATE TABLE proj_checkpoints (id INTEGER PRIMARY KEY AUTOINCREMENT, position INTEGER NOT NULL, "
            "chain BLOB NOT NULL, digest TEXT NOT NULL, state BLOB NOT NULL, created_at TEXT NOT NULL)"
        )
        bind.exec_driver_sql(
            "CREATE TABLE proj_log_retention (id INTEGER PRIMARY KEY CHECK (id = 1), cut TEXT NOT NULL)"
        )
    bind.exec_driver_sql("CREATE INDEX proj_request_logs_g1_by_position ON proj_request_logs (position)")
