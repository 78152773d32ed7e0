"""One place that turns every failure into a response, in the caller's protocol.

    Problem (status, code, message)   raised by handlers, or mapped from:
    ├── pydantic.ValidationError      → 400 invalid_request
    ├── domain.errors.NotEntitled     → 403 forbidden (a plan the user does not hold)
    ├── domain.errors.DomainError     → 400 invalid_request
    ├── ledger NotFound / Conflict    → 404 / 409
    ├── ledger InvalidValue           → 400 invalid_request
    ├── ledger Refused                → 402 insufficient_quota, 429 rate_limit_exceeded, or 403 (key/user state)
    ├── ledger LedgerUnavailable      → 503 ledger_unavailable
    └── sanic's own (404 route, 405, 413 body too large, 408 timeout)

Three shapes: the account API's ``{"error": {"message", "type"}}``, OpenAI's
``{"error": {"message", "type", "param", "code"}}`` and Anthropic's
``{"type": "error", "error": {"type", "message"}}``. Nothing internal (tracebacks,
SQL, keys) ever reaches a body: unexpected exceptions become a bare 500.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from enum import Enum
from typing import Any

import orjson
from pydantic import ValidationError
from sanic import HTTPResponse, Request
from sanic import exceptions as sanic_errors

from domain.errors import DomainError, NotEntitled
from ledger import Conflict, InvalidValue, LedgerUnavailable, NotFound, Refused

log = logging.getLogger("tokensea.errors")


class Shape(Enum):
    ACCOUNT = "account"
    OPENAI = "openai"
    ANTHROPIC = "anthropic"


@dataclass
class Problem(Exception):
    status: int
    code: str
    message: str
    param: str | None = None
    headers: dict[str, str] | None = None  # e.g. Retry-After on a 429

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"


_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    408: "timeout_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "timeout_error",
}
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    409: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def shape_for(path: str) -> Shape:
    if path.startswith("/v1/messages"):
        return Shape.ANTHROPIC
    if path.startswith("/v1/"):
        return Shape.OPENAI
    return Shape.ACCOUNT


def body(problem: Problem, shape: Shape) -> dict[str, Any]:
    if shape is Shape.OPENAI:
        return {
            "error": {
                "message": problem.message,
                "type": _OPENAI_TYPES.get(problem.status, "server_error"),
                "param": problem.param,
                "code": problem.code,
            }
        }
    if shape is Shape.ANTHROPIC:
        return {"type": "error", "error": {"type": _ANTHROPIC_TYPES.get(problem.status, "api_error"), "message": problem.message}}
    return {"error": {"message": problem.message, "type": problem.code}}


_LIMITS = {
    "rpm": "requests per minute", "tpm": "tokens per minute", "concurrency": "calls in flight at once",
}


def refusal(refused: Refused) -> Problem:
    reason = refused.reason
    if refused.rate_limited:
        whose, _, limit = reason.partition("_")
        owner = "your account" if whose == "user" else "this API key"
        if refused.retry_after is None:  # more tokens than a whole minute's worth
            return Problem(429, "rate_limit_exceeded",
                           f"This request counts more tokens than {owner}'s whole tokens-per-minute limit; "
                           "lower max_tokens or shorten the prompt.")
        seconds = max(1, math.ceil(refused.retry_after))
        return Problem(429, "rate_limit_exceeded",
                       f"{owner.capitalize()} is over its limit of {_LIMITS[limit]}; try again in {seconds} s.",
                       headers={"retry-after": str(seconds)})
    if reason.startswith("insufficient_"):
        whose = "your key's quota" if reason == "insufficient_key_quota" else "your account"
        return Problem(
            402,
            "insufficient_quota",
            f"This request needs up to {refused.needed} cents (its prompt plus its output limit, or one output "
            f"token when it sets none, at this model's prices) and {whose} has {refused.available} cents left. "
            "Lower max_tokens or add quota.",
        )
    messages = {
        "user_disabled": "this account is disabled",
        "key_disabled": "this API key is disabled or deleted",
        "key_expired": "this API key has expired",
        "unknown_account": "this API key cannot be used",
    }
    return Problem(403, "permission_denied", messages.get(reason, "this request is not allowed"))


def to_problem(exc: BaseException) -> Problem:
    if isinstance(exc, Problem):
        return exc
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        return Problem(400, "invalid_request", f"{where}: {first['msg']}", param=where)
    if isinstance(exc, NotEntitled):
        return Problem(403, "forbidden", str(exc))
    if isinstance(exc, DomainError):
        return Problem(400, "invalid_request", str(exc))
    if isinstance(exc, Refused):
        return refusal(exc)
    if isinstance(exc, InvalidValue):
        return Problem(400, "invalid_request", "the request contains a value that cannot be stored")
    if isinstance(exc, NotFound):
        return Problem(404, "not_found", str(exc) or "not found")
    if isinstance(exc, Conflict):
        return Problem(409, "conflict", str(exc))
    if isinstance(exc, LedgerUnavailable):
        return Problem(503, "ledger_unavailable", "the billing ledger is unavailable; try again shortly")
    if isinstance(exc, sanic_errors.PayloadTooLarge):
        return Problem(413, "payload_too_large", "the request body is too large")
    if isinstance(exc, sanic_errors.NotFound):
        return Problem(404, "not_found", "no such route")
    if isinstance(exc, sanic_errors.MethodNotAllowed):
        return Problem(405, "method_not_allowed", "method not allowed on this route")
    if isinstance(exc, sanic_errors.RequestTimeout):
        return Problem(408, "request_timeout", "the request took too long to arrive")
    if isinstance(exc, sanic_errors.BadRequest):
        return Problem(400, "invalid_request", "malformed request")
    if isinstance(exc, sanic_errors.SanicException) and 400 <= (exc.status_code or 500) < 500:
        return Problem(exc.status_code, "invalid_request", "the request was refused")
    return Problem(500, "internal_error", "internal error")


def render(problem: Problem, shape: Shape, headers: dict[str, str] | None = None) -> HTTPResponse:
    return HTTPResponse(
        orjson.dumps(body(problem, shape)),
        status=problem.status,
        headers=headers,
        content_type="application/json",
    )


def _allowed(request: Request) -> str:
    """The methods the router has for this path (its own error omits them for dynamic paths)."""
    methods = []
    for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
        try:
            request.app.router.get(request.path, method, request.headers.get("host"))
        except sanic_errors.SanicException:
            continue
        methods.append(method)
    return ", ".join(methods)


async def handle(request: Request, exc: Exception) -> HTTPResponse:
    problem = to_problem(exc)
    if problem.status >= 500 and not isinstance(exc, Problem | LedgerUnavailable):
        log.error("unhandled error on %s %s", request.method, request.path, exc_info=exc)
    headers: dict[str, str] = dict(problem.headers or {})
    if isinstance(exc, sanic_errors.MethodNotAllowed):
        headers["allow"] = _allowed(request)  # RFC 9110 requires it
    request_id = getattr(request.ctx, "request_id", None) if hasattr(request, "ctx") else None
    if request_id:
        headers["x-request-id"] = request_id
    return render(problem, shape_for(request.path), headers)
