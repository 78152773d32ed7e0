"""Reads of the projections for the account and usage endpoints."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from ledger.database import to_datetime, to_decimal, to_optional_datetime, to_uuid
from ledger.queries import Queries
from projections.logs import COLUMNS
from projections.usage import FIELDS


@dataclass(frozen=True)
class LogFilter:
    user_id: UUID
    model: str | None = None
    key_id: UUID | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class LogPosition:
    """A row's place in the request log's order (``position`` is unique)."""

    created_at: datetime
    position: int


def _condition(where: LogFilter) -> tuple[str, list[Any]]:
    """The filter's clauses; the user's always (a position never reaches past the user)."""
    given = (("user_id = %s", where.user_id), ("model = %s", where.model), ("key_id = %s", where.key_id),
             ("created_at >= %s", where.since), ("created_at < %s", where.until))
    chosen = [(clause, value) for clause, value in given if value is not None]
    return " AND ".join(clause for clause, _ in chosen), [value for _, value in chosen]


class ProjectionQueries(Queries):
    """Reads of the read models, through the same connection plumbing as the ledger's."""

    def user_balance(self, user_id: UUID) -> dict[str, Any]:
        rows = self._all("SELECT quota, used, request_count FROM proj_user_balances WHERE user_id = %s", [user_id])
        if not rows:
            return {"quota": Decimal(0), "used": Decimal(0), "request_count": 0}
        row = rows[0]
        return {"quota": to_decimal(row["quota"]), "used": to_decimal(row["used"]), "request_count": row["request_count"]}

    def key_balances(self, key_ids: list[UUID]) -> dict[UUID, dict[str, Any]]:
        if not key_ids:
            return {}
        rows = self._all(
            f"SELECT key_id, used, request_count, last_used_at FROM proj_key_balances "
            f"WHERE key_id IN ({self.db.in_list(len(key_ids))})",
            list(key_ids),
        )
        return {
            to_uuid(row["key_id"]): {
                "used": to_decimal(row["used"]),
                "request_count": row["request_count"],
                "last_used_at": to_optional_datetime(row["last_used_at"]),
            }
            for row in rows
        }

    def logs(self, where: LogFilter, limit: int, *, offset: int = 0, after: LogPosition | None = None) -> list[dict[str, Any]]:
        """The user's rows newest first, by ``(created_at DESC, position DESC)``: from
        ``offset``, or strictly after the row at ``after`` (keyset: a deep position costs
        what the first page does, one descent of the index ``(user_id, created_at,
        position)``, whose every column the order and the conditions name)."""
        condition, params = _condition(where)
        if after is not None:
            # The row value is the keyset condition proper: both databases descend the
            # index to it (SQLite since 3.15). On PostgreSQL the plain ``created_at <=``,
            # implied by it, is there so a table partitioned by ``created_at`` can leave
            # out the newer partitions (row values take no part in pruning); SQLite would
            # take it for its index range instead, and filter ties row by row.
            if self.db.is_postgres:
                condition += " AND created_at <= %s"
                params.append(after.created_at)
            condition += " AND (created_at, position) < (%s, %s)"
            params += [after.created_at, after.position]
        rows = self._all(
            f"SELECT {', '.join(COLUMNS)} FROM proj_request_logs WHERE {condition} "
            "ORDER BY created_at DESC, position DESC LIMIT %s OFFSET %s",
            [*params, limit, offset],
        )
        return [_log(row) for row in rows]

    def count_logs(self, where: LogFilter, cap: int) -> int:
        """How many rows match, counting no further than ``cap``: a count of everything
        would read the user's whole history on every call. In the log's order, so it
        reads the newest ``cap`` entries of the page's own index, never the whole table."""
        condition, params = _condition(where)
        rows = self._all(
            f"SELECT COUNT(*) AS n FROM (SELECT 1 FROM proj_request_logs WHERE {condition} "
            "ORDER BY created_at DESC, position DESC LIMIT %s) AS capped",
            [*params, cap],
        )
        return int(rows[0]["n"])

    def daily_usage(self, user_id: UUID, first_day: str) -> list[dict[str, Any]]:
        """Rows of ``proj_usage_daily`` from ``first_day`` (YYYY-MM-DD) on."""
        rows = self._all(
            f"SELECT day, model, {', '.join(FIELDS)}, cost FROM proj_usage_daily "
            "WHERE user_id = %s AND day >= %s ORDER BY day, model",
            [user_id, first_day],
        )
        return [{"day": row["day"], "model": row["model"], **_counts(row)} for row in rows]

    def hourly_usage(self, user_id: UUID, first_hour: str) -> list[dict[str, Any]]:
        """Rows of ``proj_usage_hourly`` from ``first_hour`` (YYYY-MM-DDTHH:00:00Z) on,
        each also labelled with its day: windows shorter than a day, never the logs."""
        rows = self._all(
            f"SELECT hour, model, {', '.join(FIELDS)}, cost FROM proj_usage_hourly "
            "WHERE user_id = %s AND hour >= %s ORDER BY hour, model",
            [user_id, first_hour],
        )
        return [{"hour": row["hour"], "day": row["hour"][:10], "model": row["model"], **_counts(row)} for row in rows]


def _counts(row: Any) -> dict[str, Any]:
    return {**{f: int(row[f]) for f in FIELDS}, "cost": to_decimal(row["cost"])}


def _log(row: Any) -> dict[str, Any]:
    values = {column: row[column] for column in COLUMNS}
    values["user_id"] = to_uuid(values["user_id"])
    values["key_id"] = to_uuid(values["key_id"])
    values["stream"] = bool(values["stream"])
    values["cost"] = to_decimal(values["cost"])
    values["created_at"] = to_datetime(values["created_at"])
    return values
