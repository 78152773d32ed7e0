"""The plans a caller may bind keys to: the ones they hold (admins: every configured plan)."""

from __future__ import annotations

from sanic import Blueprint, HTTPResponse, Request

from edge import entitlements, views
from edge.auth import current_user, services
from edge.http import respond

blueprint = Blueprint("plans", url_prefix="/api/plans")


@blueprint.get("")
async def plans(request: Request) -> HTTPResponse:
    user = await current_user(request)
    svc = services(request)
    configured = svc.settings.catalogue.plans
    held = await entitlements.held(svc.ledger, user["user_id"])
    shown = configured.keys() if user["role"] == "admin" else [plan for plan in held.plans if plan in configured]
    return respond([{**views.plan(configured[plan]), "default": plan == held.default} for plan in sorted(shown)])
