"""Who is calling the account API: the session's user, and whether they may."""

from __future__ import annotations

from typing import Any

from sanic import Request

from edge.errors import Problem
from edge.services import Services


def services(request: Request) -> Services:
    found: Services = request.app.ctx.services
    return found


def bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(401, "unauthorized", "log in and send the session token as 'Authorization: Bearer <token>'")
    return token.strip()


async def current_user(request: Request) -> dict[str, Any]:
    svc = services(request)
    user_id = svc.sessions.verify(bearer(request))
    user = await svc.ledger.aread(lambda q: q.user_by_id(user_id))
    if user is None:
        raise Problem(401, "unauthorized", "invalid session token")
    if user["status"] != "active":
        raise Problem(403, "forbidden", "this account is disabled")
    return user


async def current_admin(request: Request) -> dict[str, Any]:
    user = await current_user(request)
    if user["role"] != "admin":
        raise Problem(403, "forbidden", "administrators only")
    return user
