"""Usage per user, time bucket and model: requests (failures counted apart), tokens, cost.

Two read models share one fold: ``DailyUsage`` (UTC days, for the 7- and 30-day
statistics) and ``HourlyUsage`` (UTC hours, for the last 24 hours). Both answer the
usage statistics with a few rows per day or hour instead of one per request, so a
dashboard costs the same on ten million requests as on a thousand.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, ClassVar
from uuid import UUID

from domain.charges import Charge, RequestStatus
from domain.money import EXACT
from ledger.database import to_datetime, to_decimal, to_uuid
from projections.base import Projection, Target

Key = tuple[UUID, str, str]  # user, bucket (a UTC day or hour, as text that sorts), model
FIELDS = ("requests", "failed", "prompt_tokens", "completion_tokens", "cache_read_tokens", "cache_write_tokens")
_COLUMNS = (
    "user_id {{uuid}} NOT NULL, {bucket} TEXT NOT NULL, model TEXT NOT NULL, requests INTEGER NOT NULL, "
    "failed INTEGER NOT NULL, prompt_tokens BIGINT NOT NULL, completion_tokens BIGINT NOT NULL, "
    "cache_read_tokens BIGINT NOT NULL, cache_write_tokens BIGINT NOT NULL, cost {{money}} NOT NULL, "
    "PRIMARY KEY (user_id, {bucket}, model)"
)


def day_of(event: Any) -> str:
    """``YYYY-MM-DD``, the UTC day of the request."""
    return to_datetime(event.requested_at).date().isoformat()


def hour_of(event: Any) -> str:
    """``YYYY-MM-DDTHH:00:00Z``, the UTC hour of the request (sorts as text)."""
    return to_datetime(event.requested_at).strftime("%Y-%m-%dT%H:00:00Z")


def contribution(event: Any) -> list[Any]:
    """What one charge adds to its bucket's row: FIELDS, then cost."""
    return [
        1,
        0 if event.status == RequestStatus.SUCCESS.value else 1,
        event.input_tokens + event.cache_read_tokens + event.cache_write_tokens,
        event.output_tokens,
        event.cache_read_tokens,
        event.cache_write_tokens,
        event.cost.cents,
    ]


class _UsageBuckets(Projection):
    """Sums charges into one row per (user, bucket, model), a batch at a time."""

    table: ClassVar[str]
    bucket: ClassVar[str]  # the bucket's column

    @abstractmethod
    def bucket_of(self, event: Any) -> str:
        """The bucket a charge falls in (``day_of``, ``hour_of``)."""

    def apply(self, target: Target, events: Sequence[tuple[int, Any]]) -> None:
        rows: dict[Key, list[Any]] = {}
        charges = [e for _, e in events if isinstance(e, Charge.TokensConsumed)]
        if not charges:
            return
        for event in charges:
            rows.setdefault((event.user_id, self.bucket_of(event), event.model), [0, 0, 0, 0, 0, 0, Decimal(0)])
        table, bucket = target[self.table], self.bucket
        users = sorted({key[0] for key in rows})
        buckets = sorted({key[1] for key in rows})
        for row in target.select(
            f"SELECT user_id, {bucket}, model, {', '.join(FIELDS)}, cost FROM {table} "
            f"WHERE user_id IN ({target.db.in_list(len(users))}) AND {bucket} IN ({target.db.in_list(len(buckets))})",
            [*users, *buckets],
        ):
            key = (to_uuid(row["user_id"]), row[bucket], row["model"])
            if key in rows:
                rows[key] = [*(int(row[f]) for f in FIELDS), to_decimal(row["cost"])]
        for event in charges:
            totals = rows[(event.user_id, self.bucket_of(event), event.model)]
            for index, amount in enumerate(contribution(event)):
                totals[index] = EXACT.add(totals[index], amount) if index == 6 else totals[index] + amount
        updates = ", ".join(f"{f} = excluded.{f}" for f in (*FIELDS, "cost"))
        target.executemany(
            f"INSERT INTO {table} (user_id, {bucket}, model, {', '.join(FIELDS)}, cost) "
            f"VALUES (%s, %s, %s, {', '.join(['%s'] * (len(FIELDS) + 1))}) "
            f"ON CONFLICT (user_id, {bucket}, model) DO UPDATE SET {updates}",
            [(*key, *values) for key, values in rows.items()],
        )


class DailyUsage(_UsageBuckets):
    name = "daily_usage"
    table = "proj_usage_daily"
    bucket = "day"
    tables = {table: _COLUMNS.format(bucket=bucket)}

    def bucket_of(self, event: Any) -> str:
        return day_of(event)


class HourlyUsage(_UsageBuckets):
    """The last 24 hours' statistics, and their chart, read at most 25 hours of rows
    per user and model. Added after the others: a deployment that upgrades starts this
    projection at position 0, and the runner folds the whole ledger into it once."""

    name = "hourly_usage"
    table = "proj_usage_hourly"
    bucket = "hour"
    tables = {table: _COLUMNS.format(bucket=bucket)}

    def bucket_of(self, event: Any) -> str:
        return hour_of(event)
