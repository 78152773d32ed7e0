"""Small helpers shared by the JSON routes: read a body, answer, paginate."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel
from sanic import HTTPResponse, Request

from domain.money import ScientificNumber
from edge.errors import Problem

M = TypeVar("M", bound=BaseModel)

MAX_PAGE_SIZE = 100


def read_json(request: Request) -> Any:
    """The body as JSON, with decimal numbers kept exact (never through a float)."""
    raw = request.body
    if not raw:
        raise Problem(400, "invalid_request", "a JSON body is required")
    try:
        data = json.loads(raw, parse_float=_exact_number, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise Problem(400, "invalid_request", "the body is not valid JSON") from None
    if _has_nul(data):  # PostgreSQL text cannot hold NUL; say so instead of failing later
        raise Problem(400, "invalid_request", "text may not contain NUL characters")
    return data


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    if isinstance(value, dict):
        return any(_has_nul(key) or _has_nul(item) for key, item in value.items())
    return False


def query(request: Request, name: str) -> str | None:
    """A query parameter, refused (400) if it holds a NUL character, which no database stores."""
    value = request.args.get(name)
    if value is not None and "\x00" in value:
        raise Problem(400, "invalid_request", f"{name} may not contain NUL characters", param=name)
    return value


def _exact_number(text: str) -> Decimal:
    """A JSON number with a fraction or an exponent, exact; the exponent form is marked,
    because an amount must be written plainly (``domain.money.parse_amount``)."""
    return ScientificNumber(text) if "e" in text or "E" in text else Decimal(text)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def parse(request: Request, model: type[M]) -> M:
    data = read_json(request)
    if not isinstance(data, dict):
        raise Problem(400, "invalid_request", "the body must be a JSON object")
    return model.model_validate(data)


def respond(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> HTTPResponse:
    return HTTPResponse(orjson.dumps(data, default=str), status=status, headers=headers, content_type="application/json")


def page(request: Request, default_size: int = 20) -> tuple[int, int]:
    """``page`` (1-based) and ``pageSize`` (1..100) from the query string."""
    try:
        number = int(request.args.get("page", "1"))
        size = int(request.args.get("pageSize", str(default_size)))
    except ValueError:
        raise Problem(400, "invalid_request", "page and pageSize must be integers") from None
    if number < 1 or number > 1_000_000:
        raise Problem(400, "invalid_request", "page must be between 1 and 1000000", param="page")
    if size < 1 or size > MAX_PAGE_SIZE:
        raise Problem(400, "invalid_request", f"pageSize must be between 1 and {MAX_PAGE_SIZE}", param="pageSize")
    return number, size
