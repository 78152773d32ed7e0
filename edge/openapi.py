"""The OpenAPI 3.1 document for ``/openapi.json``: request bodies come from the very
pydantic models that validate them, so the document cannot drift from the code."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel

from edge.routes.accounts import Login, Profile, Register
from edge.routes.admin import AdministerUser, GrantBody
from edge.routes.tokens import CreateKey, UpdateKey
from edge.routes.usage import MAX_OFFSET_ROWS

MONEY = {"type": "string", "pattern": r"^-?\d+(\.\d+)?$", "description": "exact decimal cents"}
NULLABLE_STRING = {"type": ["string", "null"]}
TIMESTAMP = {"type": "string", "format": "date-time"}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "object", "required": ["message", "type"],
                                 "properties": {"message": {"type": "string"}, "type": {"type": "string"}}}},
    },
    "User": {
        "type": "object",
        "required": ["id", "username", "name", "role", "status", "quota", "usedQuota", "requestCount", "inviteCode"],
        "properties": {
            "id": {"type": "string", "format": "uuid"}, "username": {"type": "string"}, "name": {"type": "string"},
            "email": NULLABLE_STRING, "role": {"enum": ["user", "admin"]}, "status": {"enum": ["active", "disabled"]},
            "quota": MONEY, "usedQuota": MONEY, "requestCount": {"type": "integer"}, "inviteCode": {"type": "string"},
            "createdAt": TIMESTAMP,
        },
    },
    "ApiKey": {
        "type": "object",
        "required": ["id", "keyPrefix", "name", "status", "quota", "usedQuota", "models", "planId", "expiresAt",
                     "createdAt", "lastUsedAt"],
        "properties": {
            "id": {"type": "string", "format": "uuid"}, "keyPrefix": {"type": "string"}, "name": {"type": "string"},
            "status": {"enum": ["active", "disabled", "deleted"]}, "quota": {"anyOf": [MONEY, {"type": "null"}]},
            "usedQuota": MONEY, "models": {"type": ["array", "null"], "items": {"type": "string"}},
            "planId": {"type": ["integer", "null"]}, "expiresAt": NULLABLE_STRING, "createdAt": TIMESTAMP,
            "lastUsedAt": NULLABLE_STRING,
        },
    },
    "Log": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"}, "requestId": {"type": "string"}, "createdAt": TIMESTAMP, "model": {"type": "string"},
            "provider": {"type": "string"}, "tokenId": {"type": "string"}, "tokenName": {"type": "string"},
            "endpoint": {"type": "string"}, "stream": {"type": "boolean"}, "promptTokens": {"type": "integer"},
            "completionTokens": {"type": "integer"}, "cacheReadTokens": {"type": "integer"},
            "cacheWriteTokens": {"type": "integer"}, "cost": MONEY, "latencyMs": {"type": "integer"},
            "status": {"enum": ["success", "error", "client_aborted", "interrupted"]},
            "usageSource": {"enum": ["upstream", "estimated"]},
        },
    },
    "LogPage": {
        "type": "object",
        "required": ["items", "pageSize", "nextCursor"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/Log"}},
            "pageSize": {"type": "integer"},
            "nextCursor": {"type": ["string", "null"], "description": "the next page's `cursor`; null on the last page"},
            "total": {"type": "integer", "maximum": MAX_OFFSET_ROWS,
                      "description": f"page/pageSize only: the matching rows, counted up to {MAX_OFFSET_ROWS:,}"},
            "totalIsExact": {"type": "boolean", "description": f"page/pageSize only: false when more than {MAX_OFFSET_ROWS:,} match"},
            "page": {"type": "integer", "description": "page/pageSize only"},
        },
    },
    "Breakdown": {
        "type": "object",
        "properties": {"date": {"type": "string"}, "hour": {"type": "string", "description": "YYYY-MM-DDTHH:00:00Z"},
                       "model": {"type": "string"}, "requestCount": {"type": "integer"},
                       "failedCount": {"type": "integer"}, "promptTokens": {"type": "integer"},
                       "completionTokens": {"type": "integer"}, "cost": MONEY},
    },
    "Stats": {
        "type": "object",
        "required": ["totalRequests", "totalCost", "dailyBreakdown", "modelBreakdown"],
        "properties": {"period": {"type": "string"}, "totalRequests": {"type": "integer"}, "totalCost": MONEY,
                       "dailyBreakdown": {"type": "array", "items": {"$ref": "#/components/schemas/Breakdown"}},
                       "modelBreakdown": {"type": "array", "items": {"$ref": "#/components/schemas/Breakdown"}},
                       "hourlyBreakdown": {"type": "array", "items": {"$ref": "#/components/schemas/Breakdown"},
                                           "description": "period 24h only: by UTC hour, the current one and the 23 before"}},
    },
    "Model": {
        "type": "object",
        "required": ["id", "input", "output", "cacheRead", "cacheWrite", "maxOutputTokens"],
        "description": "a model alias and its first route's unit prices, in cents per million tokens",
        "properties": {"id": {"type": "string"}, "input": MONEY, "output": MONEY, "cacheRead": MONEY, "cacheWrite": MONEY,
                       "maxOutputTokens": {"type": ["integer", "null"]}},
    },
    "Plan": {
        "type": "object",
        "properties": {"id": {"type": "integer"}, "name": {"type": "string"},
                       "models": {"type": "array", "items": {"type": "string"}}, "priceMultiplier": MONEY,
                       "default": {"type": "boolean", "description": "the plan of the caller's keys made without one"}},
    },
}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _page_of(name: str) -> dict[str, Any]:
    return {"type": "object", "required": ["items", "total", "page", "pageSize"],
            "properties": {"items": {"type": "array", "items": _ref(name)}, "total": {"type": "integer"},
                           "page": {"type": "integer"}, "pageSize": {"type": "integer"}}}


def _body(model: type[BaseModel]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}


def _answer(schema: dict[str, Any] | None, description: str, *errors: int) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    ok: dict[str, Any] = {"description": description}
    if schema is not None:
        ok["content"] = {"application/json": {"schema": schema}}
    responses["201" if description.startswith("Created") else "200" if schema is not None else "204"] = ok
    for status in errors:
        responses[str(status)] = {"description": "error", "content": {"application/json": {"schema": _ref("Error")}}}
    return responses


PAGING = [
    {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 1}},
    {"name": "pageSize", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}},
]
LOGS_PAGING = (
    f"Newest first, by `(createdAt, id)`. Page by `cursor`: pass each answer's `nextCursor` (with the same "
    f"filters) for the rows after it, at the cost of the first page whatever the depth; `nextCursor` is null on "
    f"the last page. A cursor is opaque, only a place in the order: it never shows another user's rows, and one "
    f"the server did not give (altered, truncated) is a 400. `page`/`pageSize` (offset) still work for the "
    f"newest {MAX_OFFSET_ROWS:,} rows (`page * pageSize` at most {MAX_OFFSET_ROWS:,}, else a 400 that points to `cursor`), and only that "
    f"path answers `total`, `totalIsExact` and `page`: `total` counts at most {MAX_OFFSET_ROWS:,} rows (`totalIsExact` false "
    f"when there are more). Its `nextCursor` goes on from that page."
)
LOGS_CURSOR = {"name": "cursor", "in": "query", "schema": {"type": "string", "maxLength": 128},
               "description": "a `nextCursor` from an earlier answer; not with `page`"}
LOGS_PAGE = {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_OFFSET_ROWS, "default": 1},
             "description": f"offset paging: `page * pageSize` at most {MAX_OFFSET_ROWS:,}; not with `cursor`"}
KEY_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
USER_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
SESSION: list[dict[str, list[str]]] = [{"session": []}]
ANY_JSON = {"content": {"application/json": {"schema": {"type": "object"}}}}


@cache
def document() -> dict[str, Any]:
    paths: dict[str, Any] = {
        "/api/auth/register": {"post": {"summary": "Register", "tags": ["auth"], "requestBody": _body(Register),
            "responses": _answer({"type": "object", "properties": {"user": _ref("User"), "token": {"type": "string"}}},
                                 "Created: the user and a session token", 400, 409, 429)}},
        "/api/auth/login": {"post": {"summary": "Log in", "tags": ["auth"], "requestBody": _body(Login),
            "responses": _answer({"type": "object", "properties": {"token": {"type": "string"}, "expiresAt": TIMESTAMP,
                                                                    "user": _ref("User")}},
                                 "A session token, valid jwt_ttl_days", 400, 401, 403, 429)}},
        "/api/user/self": {
            "get": {"summary": "The caller's profile and balance", "tags": ["user"], "security": SESSION,
                    "responses": _answer(_ref("User"), "The user", 401, 403)},
            "patch": {"summary": "Change name or email", "tags": ["user"], "security": SESSION,
                      "requestBody": _body(Profile), "responses": _answer(_ref("User"), "The user", 400, 401, 403)},
            "put": {"summary": "Change name or email", "tags": ["user"], "security": SESSION,
                    "requestBody": _body(Profile), "responses": _answer(_ref("User"), "The user", 400, 401, 403)},
        },
        "/api/tokens": {
            "get": {"summary": "The caller's API keys", "tags": ["keys"], "security": SESSION, "parameters": PAGING,
                    "responses": _answer(_page_of("ApiKey"), "A page of keys", 400, 401)},
            "post": {"summary": "Create an API key (the secret is shown once)", "tags": ["keys"], "security": SESSION,
                     "requestBody": _body(CreateKey),
                     "responses": _answer({"type": "object", "properties": {"apiKey": _ref("ApiKey"), "key": {"type": "string"}}},
                                          "Created: the key and its secret", 400, 401, 403)},
        },
        "/api/tokens/{id}": {
            "patch": {"summary": "Change a key", "tags": ["keys"], "security": SESSION, "parameters": [KEY_ID],
                      "requestBody": _body(UpdateKey), "responses": _answer(_ref("ApiKey"), "The key", 400, 401, 404)},
            "put": {"summary": "Change a key", "tags": ["keys"], "security": SESSION, "parameters": [KEY_ID],
                    "requestBody": _body(UpdateKey), "responses": _answer(_ref("ApiKey"), "The key", 400, 401, 404)},
            "delete": {"summary": "Delete a key", "tags": ["keys"], "security": SESSION, "parameters": [KEY_ID],
                       "responses": _answer(None, "Deleted", 401, 404)},
        },
        "/api/usage/logs": {"get": {"summary": "The caller's requests, newest first", "tags": ["usage"], "security": SESSION,
            "description": LOGS_PAGING,
            "parameters": [LOGS_CURSOR, LOGS_PAGE, PAGING[1],
                           {"name": "model", "in": "query", "schema": {"type": "string"}},
                           {"name": "tokenId", "in": "query", "schema": {"type": "string", "format": "uuid"}},
                           {"name": "from", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                           {"name": "to", "in": "query", "schema": {"type": "string", "format": "date-time"}}],
            "responses": _answer(_ref("LogPage"), "A page of request logs", 400, 401)}},
        "/api/usage/stats": {"get": {"summary": "Usage totals and breakdowns", "tags": ["usage"], "security": SESSION,
            "parameters": [{"name": "period", "in": "query", "schema": {"enum": ["24h", "7d", "30d"], "default": "7d"}}],
            "responses": _answer(_ref("Stats"), "Totals, by day and by model", 400, 401)}},
        "/api/plans": {"get": {"summary": "The plans the caller holds (admins: every plan)", "tags": ["plans"],
            "security": SESSION,
            "responses": _answer({"type": "array", "items": _ref("Plan")}, "Plans", 401)}},
        "/api/models": {"get": {"summary": "The model catalogue with unit prices", "tags": ["models"],
            "security": SESSION, "responses": _answer({"type": "array", "items": _ref("Model")}, "Models", 401)}},
        "/api/admin/users": {"get": {"summary": "Every user, or those matching q (admins)", "tags": ["admin"],
            "security": SESSION,
            "parameters": [*PAGING, {"name": "q", "in": "query", "schema": {"type": "string", "maxLength": 64},
                                     "description": "case-insensitive text in the username, name or email"}],
            "responses": _answer(_page_of("User"), "A page of users", 400, 401, 403)}},
        "/api/admin/users/{id}": {"patch": {"summary": "Change a user's status, role or plans (admins)", "tags": ["admin"],
            "security": SESSION, "parameters": [USER_ID], "requestBody": _body(AdministerUser),
            "responses": _answer(_ref("User"), "The user", 400, 401, 403, 404)}},
        "/api/admin/users/{id}/grants": {"post": {"summary": "Grant quota (admins); Idempotency-Key makes retries count once",
            "tags": ["admin"], "security": SESSION, "parameters": [USER_ID], "requestBody": _body(GrantBody),
            "responses": _answer({"type": "object"}, "Created: the grant", 400, 401, 403, 404, 409)}},
        "/v1/chat/completions": {"post": {"summary": "OpenAI Chat Completions (any model; see the README)",
            "tags": ["models"], "security": [{"apiKey": []}], "requestBody": {"required": True, **ANY_JSON},
            "responses": {"200": {"description": "A completion, or an SSE stream", **ANY_JSON}}}},
        "/v1/messages": {"post": {"summary": "Anthropic Messages (any model; see the README)", "tags": ["models"],
            "security": [{"apiKey": []}, {"anthropicKey": []}], "requestBody": {"required": True, **ANY_JSON},
            "responses": {"200": {"description": "A message, or an SSE stream", **ANY_JSON}}}},
        "/v1/messages/count_tokens": {"post": {"summary": "Anthropic token counting", "tags": ["models"],
            "security": [{"apiKey": []}, {"anthropicKey": []}], "requestBody": {"required": True, **ANY_JSON},
            "responses": {"200": {"description": "{input_tokens}", **ANY_JSON}}}},
        "/v1/models": {"get": {"summary": "The models this key may use", "tags": ["models"],
            "security": [{"apiKey": []}, {"anthropicKey": []}],
            "responses": {"200": {"description": "OpenAI's list format", **ANY_JSON}}}},
        "/v1/models/{model}": {"get": {"summary": "One model, if this key may use it (else 404)", "tags": ["models"],
            "security": [{"apiKey": []}, {"anthropicKey": []}],
            "parameters": [{"name": "model", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": {"description": "OpenAI's model object", **ANY_JSON}}}},
        "/v1/responses": {"post": {"summary": "OpenAI Responses (any model; see the README)", "tags": ["models"],
            "security": [{"apiKey": []}], "requestBody": {"required": True, **ANY_JSON},
            "responses": {"200": {"description": "A response, or an SSE stream", **ANY_JSON}}}},
        "/v1/embeddings": {"post": {"summary": "OpenAI embeddings (models on OpenAI-protocol providers)",
            "tags": ["models"], "security": [{"apiKey": []}], "requestBody": {"required": True, **ANY_JSON},
            "responses": {"200": {"description": "OpenAI's embedding list", **ANY_JSON}}}},
        "/": {"get": {"summary": "What this server is, for clients that probe the base URL (HEAD too)",
            "tags": ["operations"], "responses": {"200": {"description": "a short JSON description"}}}},
        "/healthz": {"get": {"summary": "Liveness", "tags": ["operations"], "responses": {"200": {"description": "alive"}}}},
        "/readyz": {"get": {"summary": "Readiness: database and projection lag", "tags": ["operations"],
            "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "tags": ["operations"],
            "responses": {"200": {"description": "text exposition format"}}}},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "TokenSea", "version": "0.1.0",
                 "description": "An LLM API gateway with an event-sourced billing ledger. Money is exact decimal cents."},
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "session": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "apiKey": {"type": "http", "scheme": "bearer", "description": "a tsk- key"},
                "anthropicKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            },
        },
    }
