"""The caller's request logs and usage statistics, from the projections."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

from sanic import Blueprint, HTTPResponse, Request

from domain.money import EXACT, format_decimal
from edge import cursors, views
from edge.auth import current_user, services
from edge.errors import Problem
from edge.http import page, query, respond
from projections.queries import LogFilter, LogPosition, ProjectionQueries

blueprint = Blueprint("usage", url_prefix="/api/usage")

PERIODS = {"24h": None, "7d": 7, "30d": 30}
# How deep ``page``/``pageSize`` may go, in rows, and how far ``total`` counts: the
# offset path reads every row it skips, so it stays where that is cheap.
MAX_OFFSET_ROWS = 1_000


def _when(request: Request, name: str) -> datetime | None:
    raw = query(request, name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00")) if "T" in raw else datetime.combine(
            date.fromisoformat(raw), datetime.min.time()
        )
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)
    except (ValueError, OverflowError):  # year 1 at +14:00 has no UTC time: OverflowError
        raise Problem(400, "invalid_request", f"{name} must be an ISO date or date-time", param=name) from None


@blueprint.get("/logs")
async def logs(request: Request) -> HTTPResponse:
    """Newest first, by ``(createdAt, id)``. Two ways through:

    - ``cursor`` (keyset): the rows strictly after the one a ``nextCursor`` names. Any
      depth costs what the first page does; no ``total``, no ``page``.
    - ``page`` (offset), for clients of the first release: only the newest
      ``MAX_OFFSET_ROWS`` rows (``page * pageSize`` at most that), with ``total``
      counted no further than that too (``totalIsExact`` says whether it stopped).

    Both answer ``nextCursor`` (``null`` on the last page), so a client can start by
    page and go on by cursor."""
    user = await current_user(request)
    cursor = query(request, "cursor")
    if cursor is not None and request.args.get("page") is not None:
        raise Problem(400, "invalid_request", "page and cursor cannot be combined: a cursor is its own page", param="page")
    number, size = page(request)
    if cursor is None and number * size > MAX_OFFSET_ROWS:
        raise Problem(
            400, "invalid_request",
            f"page * pageSize may be at most {MAX_OFFSET_ROWS}: go further with cursor (each answer's nextCursor)",
            param="page",
        )
    key_id = None
    if (raw := query(request, "tokenId")) is not None:
        try:
            key_id = UUID(raw)
        except ValueError:
            raise Problem(400, "invalid_request", "tokenId must be a key id", param="tokenId") from None
    model = query(request, "model")
    if model is not None and len(model) > 128:
        raise Problem(400, "invalid_request", "model is too long", param="model")
    where = LogFilter(user["user_id"], model=model, key_id=key_id, since=_when(request, "from"), until=_when(request, "to"))
    sessions = services(request).sessions

    def tag(data: bytes) -> bytes:
        return sessions.tag(cursors.PURPOSE, data)

    after = None if cursor is None else cursors.decode(cursor, tag)

    def read(q: Any) -> tuple[list[dict[str, Any]], int | None]:
        views_ = ProjectionQueries(q.db, q.conn)
        # One row more than the page tells whether there is a next page.
        rows = views_.logs(where, size + 1, offset=0 if after else (number - 1) * size, after=after)
        return rows, None if after else views_.count_logs(where, MAX_OFFSET_ROWS + 1)

    rows, counted = await services(request).ledger.aread(read)
    items = rows[:size]
    next_cursor = (
        cursors.encode(LogPosition(items[-1]["created_at"], items[-1]["position"]), tag) if len(rows) > size else None
    )
    answer: dict[str, Any] = {"items": [views.log(r) for r in items], "pageSize": size, "nextCursor": next_cursor}
    if counted is not None:
        answer |= {"total": min(counted, MAX_OFFSET_ROWS), "totalIsExact": counted <= MAX_OFFSET_ROWS, "page": number}
    return respond(answer)


def _breakdown(rows: list[dict[str, Any]], key: str, label: str) -> list[dict[str, Any]]:
    totals: dict[str, list[Any]] = defaultdict(lambda: [0, 0, 0, 0, Decimal(0)])
    for row in rows:
        entry = totals[row[key]]
        entry[0] += row["requests"]
        entry[1] += row["failed"]
        entry[2] += row["prompt_tokens"]
        entry[3] += row["completion_tokens"]
        entry[4] = EXACT.add(entry[4], row["cost"])
    return [
        {label: name, "requestCount": v[0], "failedCount": v[1], "promptTokens": v[2], "completionTokens": v[3],
         "cost": format_decimal(v[4])}
        for name, v in sorted(totals.items())
    ]


@blueprint.get("/stats")
async def stats(request: Request) -> HTTPResponse:
    """From the daily and hourly read models only: a few rows per day or hour, never
    the request log. ``24h`` is the current UTC hour and the 23 before it."""
    user = await current_user(request)
    period = request.args.get("period", "7d")
    if period not in PERIODS:
        raise Problem(400, "invalid_request", "period must be one of 24h, 7d, 30d", param="period")
    now = datetime.now(timezone.utc)
    days = PERIODS[period]

    def query(q: Any) -> list[dict[str, Any]]:
        views_ = ProjectionQueries(q.db, q.conn)
        if days is None:
            first_hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=23)
            return views_.hourly_usage(user["user_id"], f"{first_hour:%Y-%m-%dT%H}:00:00Z")
        return views_.daily_usage(user["user_id"], (now.date() - timedelta(days=days - 1)).isoformat())

    rows = await services(request).ledger.aread(query)
    total_cost = Decimal(0)
    for row in rows:
        total_cost = EXACT.add(total_cost, row["cost"])
    answer: dict[str, Any] = {
        "period": period,
        "totalRequests": sum(r["requests"] for r in rows),
        "totalCost": format_decimal(total_cost),
        "dailyBreakdown": _breakdown(rows, "day", "date"),
        "modelBreakdown": _breakdown(rows, "model", "model"),
    }
    if days is None:
        answer["hourlyBreakdown"] = _breakdown(rows, "hour", "hour")
    return respond(answer)
