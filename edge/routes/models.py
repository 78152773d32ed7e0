"""The model catalogue, for signed-in users: what the console offers in its pickers,
price list and quick-start snippets (``/v1/models`` needs a ``tsk-`` key instead)."""

from __future__ import annotations

from sanic import Blueprint, HTTPResponse, Request

from edge import views
from edge.auth import current_user, services
from edge.http import respond

blueprint = Blueprint("models", url_prefix="/api/models")


@blueprint.get("")
async def models(request: Request) -> HTTPResponse:
    await current_user(request)
    catalogue = services(request).settings.catalogue
    return respond([views.model(model) for _, model in sorted(catalogue.models.items())])
