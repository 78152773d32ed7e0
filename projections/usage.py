"""Usage per user, UTC day and model: requests (failures counted apart), tokens, cost."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any
from uuid import UUID

from domain.charges import Charge, RequestStatus
from domain.money import EXACT
from ledger.database import to_datetime, to_decimal, to_uuid
from projections.base import Projection, Target

Key = tuple[UUID, str, str]  # user, day (YYYY-MM-DD, UTC), model
FIELDS = ("requests", "failed", "prompt_tokens", "completion_tokens", "cache_read_tokens", "cache_write_tokens")


def day_of(event: Any) -> str:
    return to_datetime(event.requested_at).date().isoformat()


def contribution(event: Any) -> list[Any]:
    """What one charge adds to its day's row: FIELDS, then cost."""
    return [
        1,
        0 if event.status == RequestStatus.SUCCESS.value else 1,
        event.input_tokens + event.cache_read_tokens + event.cache_write_tokens,
        event.output_tokens,
        event.cache_read_tokens,
        event.cache_write_tokens,
        event.cost.cents,
    ]


class DailyUsage(Projection):
    name = "daily_usage"
    tables = {
        "proj_usage_daily": (
            "user_id {uuid} NOT NULL, day TEXT NOT NULL, model TEXT NOT NULL, requests INTEGER NOT NULL, "
            "failed INTEGER NOT NULL, prompt_tokens BIGINT NOT NULL, completion_tokens BIGINT NOT NULL, "
            "cache_read_tokens BIGINT NOT NULL, cache_write_tokens BIGINT NOT NULL, cost {money} NOT NULL, "
            "PRIMARY KEY (user_id, day, model)"
        ),
    }

    def apply(self, target: Target, events: Sequence[tuple[int, Any]]) -> None:
        rows: dict[Key, list[Any]] = {}
        charges = [e for _, e in events if isinstance(e, Charge.TokensConsumed)]
        if not charges:
            return
        for event in charges:
            rows.setdefault((event.user_id, day_of(event), event.model), [0, 0, 0, 0, 0, 0, Decimal(0)])
        table = target["proj_usage_daily"]
        users = sorted({key[0] for key in rows})
        days = sorted({key[1] for key in rows})
        for row in target.select(
            f"SELECT user_id, day, model, {', '.join(FIELDS)}, cost FROM {table} "
            f"WHERE user_id IN ({target.db.in_list(len(users))}) AND day IN ({target.db.in_list(len(days))})",
            [*users, *days],
        ):
            key = (to_uuid(row["user_id"]), row["day"], row["model"])
            if key in rows:
                rows[key] = [*(int(row[f]) for f in FIELDS), to_decimal(row["cost"])]
        for event in charges:
            totals = rows[(event.user_id, day_of(event), event.model)]
            for index, amount in enumerate(contribution(event)):
                totals[index] = EXACT.add(totals[index], amount) if index == 6 else totals[index] + amount
        updates = ", ".join(f"{f} = excluded.{f}" for f in (*FIELDS, "cost"))
        target.executemany(
            f"INSERT INTO {table} (user_id, day, model, {', '.join(FIELDS)}, cost) "
            f"VALUES (%s, %s, %s, {', '.join(['%s'] * (len(FIELDS) + 1))}) "
            f"ON CONFLICT (user_id, day, model) DO UPDATE SET {updates}",
            [(*key, *values) for key, values in rows.items()],
        )
