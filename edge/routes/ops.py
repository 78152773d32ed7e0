"""Operations: liveness, readiness (database and projection lag)."""

from __future__ import annotations

import asyncio
from functools import cache
from typing import Any

from sanic import Blueprint, HTTPResponse, Request

from edge import assets, metrics, openapi
from edge.auth import services
from edge.errors import Problem
from edge.http import respond
from edge.routes import console
from projections.store import lag_report

blueprint = Blueprint("ops")


@blueprint.get("/healthz")
async def healthz(request: Request) -> HTTPResponse:
    return respond({"status": "ok"})


@blueprint.get("/openapi.json")
async def openapi_json(request: Request) -> HTTPResponse:
    return respond(openapi.document())


# Swagger UI's stylesheet draws its icons from data: URLs; everything else is as strict
# as the console's policy (checked in a browser: no violation with these two changes).
DOCS_HEADERS = {
    **console.HEADERS,
    "content-security-policy": console.POLICY.replace("img-src 'self'", "img-src 'self' data:"),
}


@cache
def docs_files() -> dict[str, assets.Asset]:
    """Swagger UI (vendored: ``static/swagger-ui/VENDORED.txt``) and the page that starts it."""
    return {**assets.load("swagger-ui"), **assets.load("docs"), "icon.svg": console.files()["icon.svg"]}


@blueprint.get("/docs")
async def docs(request: Request) -> HTTPResponse:
    return assets.respond(request, docs_files()["docs.html"], DOCS_HEADERS)


@blueprint.get("/docs/<name:str>")
async def docs_asset(request: Request, name: str) -> HTTPResponse:
    found = docs_files().get(name)
    if found is None or name == "docs.html":
        raise Problem(404, "not_found", "no such file")
    return assets.respond(request, found, DOCS_HEADERS)


@blueprint.get("/metrics")
async def prometheus(request: Request) -> HTTPResponse:
    body, content_type = await asyncio.to_thread(metrics.exposition)
    return HTTPResponse(body, content_type=content_type)


@blueprint.get("/readyz")
async def readyz(request: Request) -> HTTPResponse:
    svc = services(request)
    limit = svc.settings.projections.max_lag_seconds
    try:
        lags = await asyncio.wait_for(
            svc.ledger.aread(lambda q: lag_report(q.db, q.conn, svc.ledger.log)), timeout=5
        )
    except Exception as exc:  # noqa: BLE001 - any failure here means "not ready"
        return respond({"status": "unavailable", "database": "unreachable", "detail": type(exc).__name__}, status=503)
    worst = max((lag.seconds for lag in lags), default=0.0)
    body: dict[str, Any] = {
        "status": "ok" if worst <= limit else "lagging",
        "database": "ok",
        "projections": [
            {"name": lag.name, "position": lag.position, "head": lag.head, "eventsBehind": lag.events,
             "secondsBehind": round(lag.seconds, 3)}
            for lag in lags
        ],
    }
    return respond(body, status=200 if worst <= limit else 503)
