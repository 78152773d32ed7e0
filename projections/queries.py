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

    def logs(self, where: LogFilter, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        clauses: list[str] = ["user_id = %s"]
        params: list[Any] = [where.user_id]
        if where.model is not None:
            clauses.append("model = %s")
            params.append(where.model)
        if where.key_id is not None:
            clauses.append("key_id = %s")
            params.append(where.key_id)
        if where.since is not None:
            clauses.append("created_at >= %s")
            params.append(where.since)
        if where.until is not None:
            clauses.append("created_at < %s")
            params.append(where.until)
        condition = " AND ".join(clauses)
        rows = self._all(
            f"SELECT {', '.join(COLUMNS)} FROM proj_request_logs WHERE {condition} "
            "ORDER BY created_at DESC, position DESC LIMIT %s OFFSET %s",
            [*params, limit, offset],
        )
        total = self._all(f"SELECT COUNT(*) AS n FROM proj_request_logs WHERE {condition}", params)[0]["n"]
        return [_log(row) for row in rows], int(total)

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
