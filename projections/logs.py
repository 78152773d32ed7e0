"""One row per request, as ``GET /api/usage/logs`` shows it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from domain.charges import Charge
from ledger.database import to_datetime
from projections.base import Projection, Target

TYPED_COLUMNS = (
    ("request_id", "text"), ("position", "int8"), ("user_id", "uuid"), ("key_id", "uuid"), ("key_name", "text"),
    ("model", "text"), ("provider", "text"), ("endpoint", "text"), ("stream", "bool"), ("input_tokens", "int4"),
    ("output_tokens", "int4"), ("cache_read_tokens", "int4"), ("cache_write_tokens", "int4"), ("cost", "numeric"),
    ("latency_ms", "int4"), ("status", "text"), ("usage_source", "text"), ("created_at", "timestamptz"),
)
COLUMNS = tuple(name for name, _ in TYPED_COLUMNS)


class RequestLogs(Projection):
    name = "request_logs"
    tables = {
        "proj_request_logs": (
            "request_id TEXT PRIMARY KEY, position BIGINT NOT NULL, user_id {uuid} NOT NULL, "
            "key_id {uuid} NOT NULL, key_name TEXT NOT NULL, model TEXT NOT NULL, provider TEXT NOT NULL, "
            "endpoint TEXT NOT NULL, stream BOOLEAN NOT NULL, input_tokens INTEGER NOT NULL, "
            "output_tokens INTEGER NOT NULL, cache_read_tokens INTEGER NOT NULL, "
            "cache_write_tokens INTEGER NOT NULL, cost {money} NOT NULL, latency_ms INTEGER NOT NULL, "
            "status TEXT NOT NULL, usage_source TEXT NOT NULL, created_at {ts} NOT NULL"
        ),
    }
    indexes = (("proj_request_logs", "by_user", "user_id, created_at, position"),)

    def apply(self, target: Target, events: Sequence[tuple[int, Any]]) -> None:
        rows = [
            (
                e.request_id, position, e.user_id, e.key_id, e.key_name, e.model, e.provider, e.endpoint,
                e.stream, e.input_tokens, e.output_tokens, e.cache_read_tokens, e.cache_write_tokens,
                e.cost.cents, e.latency_ms, e.status, e.usage_source, to_datetime(e.requested_at),
            )
            for position, e in events
            if isinstance(e, Charge.TokensConsumed)
        ]
        if target.fresh:  # a rebuild's new table: nothing to conflict with, load in bulk
            target.copy(target["proj_request_logs"], TYPED_COLUMNS, rows)
            return
        target.insert_new(target["proj_request_logs"], TYPED_COLUMNS, rows, key="request_id")
