"""Administration: list users, change their status or role, grant quota."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator
from sanic import Blueprint, HTTPResponse, Request

from domain.grants import Grant, GrantReason
from domain.money import Money
from domain.users import Role, Status
from edge import entitlements, grants, views
from edge.auth import current_admin, services
from edge.errors import Problem
from edge.http import page, parse, query, respond
from edge.limits import LimitsBody
from ledger import NotFound, commands
from projections.queries import ProjectionQueries

blueprint = Blueprint("admin", url_prefix="/api/admin")


class AdministerUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Status | None = None
    role: Role | None = None
    plans: list[StrictInt] | None = Field(default=None, max_length=entitlements.MAX_PLANS)  # replaces them
    defaultPlan: StrictInt | None = None  # one of plans (default: the first)
    limits: LimitsBody | None = None  # the user's own rate limits, replaced as a whole


class GrantBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: str | int | Decimal
    reason: str = Field(default="", max_length=200)

    @field_validator("amount", mode="before")
    @classmethod
    def _exact(cls, value: Any) -> Any:
        Money.parse(value, allow_zero=False)  # refuses floats, booleans, negatives, zero
        return value


def _user_id(raw: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError:
        raise Problem(404, "not_found", "no such user") from None


async def _user_view(request: Request, user_id: UUID) -> dict[str, Any]:
    def query(q: Any) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        return q.user_by_id(user_id), ProjectionQueries(q.db, q.conn).user_balance(user_id)

    row, balance = await services(request).ledger.aread(query)
    if row is None:
        raise Problem(404, "not_found", "no such user")
    return views.user(row, balance)


@blueprint.get("/users")
async def list_users(request: Request) -> HTTPResponse:
    await current_admin(request)
    number, size = page(request)
    text = (query(request, "q") or "").strip().lower()
    if len(text) > 64:
        raise Problem(400, "invalid_request", "q is too long (at most 64 characters)", param="q")

    def read(q: Any) -> tuple[list[dict[str, Any]], int, list[dict[str, Any]]]:
        offset = (number - 1) * size
        rows, total = q.list_users(offset, size, containing=text)
        projection = ProjectionQueries(q.db, q.conn)
        return rows, total, [projection.user_balance(row["user_id"]) for row in rows]

    rows, total, balances = await services(request).ledger.aread(read)
    items = [views.user(row, balance) for row, balance in zip(rows, balances, strict=True)]
    return respond({"items": items, "total": total, "page": number, "pageSize": size})


@blueprint.patch("/users/<user_id:str>")
async def administer(request: Request, user_id: str) -> HTTPResponse:
    await current_admin(request)
    body = parse(request, AdministerUser)
    target = _user_id(user_id)
    svc = services(request)
    plans: tuple[int, ...] | None = None
    if body.plans is not None:
        plans = entitlements.known_plans(svc.settings.catalogue, body.plans, body.defaultPlan)
    elif body.defaultPlan is not None:
        raise Problem(400, "invalid_request", "defaultPlan: send it with plans", param="defaultPlan")
    try:
        await svc.ledger.arun(commands.AdministerUser(
            target, body.status, body.role, limits=None if body.limits is None else body.limits.limits(),
            plans=plans, default_plan=body.defaultPlan,
        ))
    except NotFound:
        raise Problem(404, "not_found", "no such user") from None
    svc.keys.forget_user(target)
    view = await _user_view(request, target)
    held = await entitlements.held(svc.ledger, target)
    return respond({**view, "plans": list(held.plans), "defaultPlan": held.default})


@blueprint.post("/users/<user_id:str>/grants")
async def grant(request: Request, user_id: str) -> HTTPResponse:
    admin = await current_admin(request)
    body = parse(request, GrantBody)
    target = _user_id(user_id)
    # An Idempotency-Key header makes a retried grant count once (edge.grants).
    idempotency = request.headers.get("idempotency-key")
    if idempotency is not None and not 0 < len(idempotency) <= grants.MAX_KEY_LENGTH:
        raise Problem(400, "invalid_request", f"Idempotency-Key: 1 to {grants.MAX_KEY_LENGTH} characters",
                      param="Idempotency-Key")
    reference = grants.api_reference(idempotency) if idempotency else f"admin:{target}:{uuid.uuid4().hex}"
    amount = Money.parse(body.amount, allow_zero=False)
    note = body.reason or f"granted by {admin['username']}"
    ledger = services(request).ledger
    try:
        created = await ledger.arun(commands.GrantQuota(target, amount, GrantReason.ADMIN, note, reference))
    except NotFound:
        raise Problem(404, "not_found", "no such user") from None
    if created:
        return respond({**grants.Recorded(Grant.create_id(reference), target, amount, note).view(), "recorded": True},
                       status=201)
    first = await asyncio.to_thread(grants.recorded, ledger, reference)
    assert first is not None, "a reference that collided names a recorded grant"
    if not first.same_as(target, amount, note):
        return respond({"error": {"message": "this Idempotency-Key was used for a different grant (shown); "
                                             "use a new key for a new grant", "type": "idempotency_conflict"},
                        "grant": first.view()}, status=409)
    return respond({**first.view(), "recorded": False}, headers={"idempotent-replayed": "true"})
