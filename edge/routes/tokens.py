"""The caller's API keys: list, create (the secret is shown once), change, delete."""

from __future__ import annotations

from datetime import date, datetime, time, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sanic import Blueprint, HTTPResponse, Request

from domain.keys import KeyStatus
from domain.money import Money
from edge import limits, views
from edge.auth import current_user, services
from edge.errors import Problem
from edge.http import page, parse, respond
from edge.limits import LimitsBody
from edge.security import key_digest, key_prefix, new_api_key
from ledger import NotFound, commands
from projections.queries import ProjectionQueries

blueprint = Blueprint("tokens", url_prefix="/api/tokens")

Amount = str | int | Decimal


def _quota(value: Any) -> Money | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("quota must be a number of cents or null")
    return Money.parse(value)


def _expiry(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("an ISO date or date-time")
    try:
        parsed = datetime.fromisoformat(value) if "T" in value or " " in value else datetime.combine(
            date.fromisoformat(value), time.max
        )
        parsed = (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)
    except (ValueError, OverflowError):  # year 9999 at -14:00 has no UTC time: OverflowError
        raise ValueError("an ISO date or date-time in years 1 to 9999") from None
    if parsed <= datetime.now(timezone.utc):
        raise ValueError("must be in the future")
    return parsed


class _KeyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("quota", mode="before", check_fields=False)
    @classmethod
    def _exact_quota(cls, value: Any) -> Any:
        _quota(value)  # refuses floats, booleans and negatives before pydantic coerces them
        return value


class CreateKey(_KeyBody):
    name: str = Field(min_length=1, max_length=64)
    planId: int | None = None
    quota: Amount | None = None
    models: list[str] | None = Field(default=None, max_length=500)
    expiresAt: str | None = None
    limits: LimitsBody | None = None  # the key's own rate limits, within its plan's

    @field_validator("expiresAt")
    @classmethod
    def _future(cls, value: str | None) -> str | None:
        _expiry(value)
        return value


class UpdateKey(_KeyBody):
    name: str | None = Field(default=None, min_length=1, max_length=64)
    status: KeyStatus | None = None
    quota: Amount | None = None
    limits: LimitsBody | None = None  # replaced as a whole; each null is no limit of its own

    @field_validator("status")
    @classmethod
    def _settable(cls, value: KeyStatus | None) -> KeyStatus | None:
        if value is KeyStatus.DELETED:
            raise ValueError("use DELETE to delete a key")
        return value


def _key_id(raw: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError:
        raise Problem(404, "not_found", "no such key") from None


async def _view(request: Request, row: dict[str, Any]) -> dict[str, Any]:
    balances = await services(request).ledger.aread(
        lambda q: ProjectionQueries(q.db, q.conn).key_balances([row["key_id"]])
    )
    return views.api_key(row, balances.get(row["key_id"]))


@blueprint.get("")
async def list_keys(request: Request) -> HTTPResponse:
    user = await current_user(request)
    number, size = page(request)

    def query(q: Any) -> tuple[list[dict[str, Any]], int, dict[UUID, dict[str, Any]]]:
        rows, total = q.list_keys(user["user_id"], (number - 1) * size, size)
        return rows, total, ProjectionQueries(q.db, q.conn).key_balances([r["key_id"] for r in rows])

    rows, total, balances = await services(request).ledger.aread(query)
    items = [views.api_key(row, balances.get(row["key_id"])) for row in rows]
    return respond({"items": items, "total": total, "page": number, "pageSize": size})


@blueprint.post("")
async def create_key(request: Request) -> HTTPResponse:
    user = await current_user(request)
    body = parse(request, CreateKey)
    svc = services(request)
    catalogue = svc.settings.catalogue
    if body.planId is not None and body.planId not in catalogue.plans:
        raise Problem(400, "invalid_request", f"no plan with id {body.planId}", param="planId")
    if body.models is not None:
        unknown = sorted(set(body.models) - set(catalogue.models))
        if unknown:
            raise Problem(400, "invalid_request", f"unknown models: {', '.join(unknown[:5])}", param="models")
    own = None if body.limits is None else limits.within_plan(
        body.limits.limits(), None if body.planId is None else catalogue.plans[body.planId]
    )
    secret = new_api_key()
    key_id = await svc.ledger.arun(
        commands.CreateKey(
            user_id=user["user_id"],
            name=body.name,
            digest=key_digest(secret),
            prefix=key_prefix(secret),
            quota=_quota(body.quota),
            models=body.models,
            plan_id=body.planId,
            expires_at=_expiry(body.expiresAt),
            limits=own,
        )
    )
    row = await svc.ledger.aread(lambda q: q.key_by_id(key_id))
    assert row is not None, "a key is readable once its creation has committed"
    return respond({"apiKey": views.api_key(row, None), "key": secret}, status=201)


@blueprint.route("/<key_id:str>", methods=["PATCH", "PUT"])
async def update_key(request: Request, key_id: str) -> HTTPResponse:
    user = await current_user(request)
    body = parse(request, UpdateKey)
    svc = services(request)
    changes: dict[str, Any] = {"name": body.name, "status": body.status}
    if "quota" in body.model_fields_set:
        changes["quota"] = _quota(body.quota)
    if body.limits is not None:
        current = await svc.ledger.aread(lambda q: q.key_by_id(_key_id(key_id)))
        if current is None or current["user_id"] != user["user_id"]:
            raise Problem(404, "not_found", "no such key")
        plan = None if current["plan_id"] is None else svc.settings.catalogue.plans.get(current["plan_id"])
        changes["limits"] = limits.within_plan(body.limits.limits(), plan)
    try:
        await svc.ledger.arun(commands.UpdateKey(user["user_id"], _key_id(key_id), **changes))
    except NotFound:
        raise Problem(404, "not_found", "no such key") from None
    svc.keys.forget_key(_key_id(key_id))
    row = await svc.ledger.aread(lambda q: q.key_by_id(_key_id(key_id)))
    assert row is not None, "a key is readable once its change has committed"
    return respond(await _view(request, row))


@blueprint.delete("/<key_id:str>")
async def delete_key(request: Request, key_id: str) -> HTTPResponse:
    user = await current_user(request)
    svc = services(request)
    try:
        await svc.ledger.arun(commands.UpdateKey(user["user_id"], _key_id(key_id), delete=True))
    except NotFound:
        raise Problem(404, "not_found", "no such key") from None
    svc.keys.forget_key(_key_id(key_id))
    return HTTPResponse(status=204)
