"""The configured plans."""

from __future__ import annotations

from sanic import Blueprint, HTTPResponse, Request

from edge import views
from edge.auth import current_user, services
from edge.http import respond

blueprint = Blueprint("plans", url_prefix="/api/plans")


@blueprint.get("")
async def plans(request: Request) -> HTTPResponse:
    await current_user(request)
    catalogue = services(request).settings.catalogue
    return respond([views.plan(plan) for plan in sorted(catalogue.plans.values(), key=lambda p: p.id)])
