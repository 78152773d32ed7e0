"""Registration, login and the caller's own profile."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from sanic import Blueprint, HTTPResponse, Request

from domain.users import Role
from edge import passwords, views
from edge.auth import current_user, services
from edge.errors import Problem
from edge.http import parse, respond
from edge.security import check_password, hash_password
from ledger import Conflict, NotFound, commands
from projections.queries import ProjectionQueries

blueprint = Blueprint("accounts", url_prefix="/api")

USERNAME = re.compile(r"^[A-Za-z0-9]{3,32}$")
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{1,63}$")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


def _email(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not EMAIL.match(value):
        raise ValueError("not a valid email address")
    return value


class Register(_Body):
    username: str
    password: str = Field(min_length=passwords.MIN_LENGTH, max_length=passwords.MAX_LENGTH)
    email: str | None = None
    inviteCode: str | None = Field(default=None, max_length=32)

    @field_validator("username")
    @classmethod
    def _username(cls, value: str) -> str:
        if not USERNAME.match(value):
            raise ValueError("3 to 32 letters or digits")
        return value

    @field_validator("password")
    @classmethod
    def _strong_enough(cls, value: str, info: ValidationInfo) -> str:
        weakness = passwords.weakness(value, info.data.get("username", ""))
        if weakness:
            raise ValueError(weakness)
        return value

    @field_validator("email")
    @classmethod
    def _valid_email(cls, value: str | None) -> str | None:
        return _email(value)


class Login(_Body):
    username: str = Field(max_length=64)
    password: str = Field(max_length=1024)


class Profile(_Body):
    name: str | None = Field(default=None, min_length=1, max_length=64)
    email: str | None = None

    @field_validator("email")
    @classmethod
    def _valid_email(cls, value: str | None) -> str | None:
        return _email(value)


def client_address(request: Request) -> str:
    """The client's address: from the trusted proxies' headers (``proxies_count``), else the peer."""
    return request.remote_addr or request.ip


async def profile(request: Request, user: dict[str, Any]) -> dict[str, Any]:
    balance = await services(request).ledger.aread(lambda q: ProjectionQueries(q.db, q.conn).user_balance(user["user_id"]))
    return views.user(user, balance)


@blueprint.post("/auth/register")
async def register(request: Request) -> HTTPResponse:
    body = parse(request, Register)
    svc = services(request)
    await svc.throttle.registration(client_address(request))  # before the bcrypt hash it would cost
    password_hash = await asyncio.to_thread(hash_password, body.password)
    try:
        user_id = await svc.ledger.arun(
            commands.RegisterUser(
                username=body.username,
                password_hash=password_hash,
                email=body.email,
                role=Role.USER,
                inviter_code=body.inviteCode,
                signup_quota=svc.settings.signup_quota,
                invite_reward=svc.settings.invite_reward,
            )
        )
    except Conflict:
        raise Problem(409, "conflict", "that username is taken") from None
    except NotFound:
        raise Problem(400, "invalid_request", "unknown invite code", param="inviteCode") from None
    user = await svc.ledger.aread(lambda q: q.user_by_id(user_id))
    assert user is not None, "a user is readable once registration has committed"
    token, _ = svc.sessions.issue(user_id)
    granted = svc.settings.signup_quota.cents + (svc.settings.invite_reward.cents if body.inviteCode else 0)
    balance = {"quota": granted, "used": 0, "request_count": 0}  # just written; projections follow within a second
    return respond({"user": views.user(user, balance), "token": token}, status=201)


@blueprint.post("/auth/login")
async def login(request: Request) -> HTTPResponse:
    body = parse(request, Login)
    svc = services(request)
    attempt = await svc.throttle.login_started(body.username, client_address(request))  # counted before the check
    user = await svc.ledger.aread(lambda q: q.user_by_username(body.username))
    valid = await asyncio.to_thread(check_password, body.password, user["password_hash"] if user else None)
    if not valid or user is None:
        raise Problem(401, "unauthorized", "wrong username or password")
    await svc.throttle.login_succeeded(attempt)
    if user["status"] != "active":
        raise Problem(403, "forbidden", "this account is disabled")
    token, expires = svc.sessions.issue(user["user_id"])
    return respond({"token": token, "expiresAt": expires.isoformat(), "user": await profile(request, user)})


@blueprint.get("/user/self")
async def get_self(request: Request) -> HTTPResponse:
    return respond(await profile(request, await current_user(request)))


@blueprint.route("/user/self", methods=["PATCH", "PUT"])
async def update_self(request: Request) -> HTTPResponse:
    user = await current_user(request)
    body = parse(request, Profile)
    svc = services(request)
    await svc.ledger.arun(commands.ChangeProfile(user["user_id"], body.name, body.email))
    updated = await svc.ledger.aread(lambda q: q.user_by_id(user["user_id"]))
    assert updated is not None
    return respond(await profile(request, updated))
