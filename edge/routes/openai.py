"""OpenAI-compatible routes: ``POST /v1/chat/completions`` and ``GET /v1/models``."""

from __future__ import annotations

from typing import Any

import orjson
from sanic import Blueprint, HTTPResponse, Request

from domain.catalogue import Model, Protocol, model_allowed
from edge.auth import services
from edge.errors import Problem
from edge.http import respond
from edge.relay import exchange, prompts
from edge.relay.openai_native import OpenAIToOpenAI
from edge.relay.protocol import Adapter
from edge.relay.translate.openai_to_anthropic import OpenAIToAnthropic

blueprint = Blueprint("openai", url_prefix="/v1")

MAX_TOKENS_LIMIT = 10_000_000
MODELS_CREATED = 1_700_000_000  # a fixed date: the list is configuration, not history


def json_object(request: Request) -> dict[str, Any]:
    try:
        body = orjson.loads(request.body or b"")
    except orjson.JSONDecodeError:
        raise Problem(400, "invalid_request", "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise Problem(400, "invalid_request", "the body must be a JSON object")
    return body


def positive_int(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_TOKENS_LIMIT:
        raise Problem(400, "invalid_request", f"{name} must be a positive integer", param=name)
    return value


def model_of(body: dict[str, Any], catalogue_models: dict[str, Model]) -> Model:
    name = body.get("model")
    if not isinstance(name, str) or not name:
        raise Problem(400, "invalid_request", "model is required", param="model")
    model = catalogue_models.get(name)
    if model is None:
        raise Problem(404, "model_not_found", f"The model '{name[:100]}' does not exist", param="model")
    return model


def validate_chat(body: dict[str, Any]) -> tuple[bool, int, int]:
    """``stream``, ``max output tokens``, ``n``; or a 400 naming the field."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise Problem(400, "invalid_request", "messages must be a non-empty array", param="messages")
    for number, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise Problem(400, "invalid_request", f"messages[{number}] must be an object with a role", param="messages")
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise Problem(400, "invalid_request", "stream must be a boolean", param="stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise Problem(400, "invalid_request", "stream_options must be an object", param="stream_options")
    limits = [v for v in (positive_int(body, "max_tokens"), positive_int(body, "max_completion_tokens")) if v]
    if not limits:
        raise Problem(
            400, "invalid_request", "max_tokens (or max_completion_tokens) is required: it bounds the cost",
            param="max_tokens",
        )
    n = body.get("n", 1)
    if n is None:
        n = 1
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 128:
        raise Problem(400, "invalid_request", "n must be an integer from 1 to 128", param="n")
    return stream, max(limits), n


def adapter_for(route_protocol: Protocol) -> Adapter:
    return OpenAIToOpenAI() if route_protocol is Protocol.OPENAI else OpenAIToAnthropic()


@blueprint.post("/chat/completions")
async def chat_completions(request: Request) -> HTTPResponse | None:
    svc = services(request)
    caller = await svc.keys.authenticate(request)
    body = json_object(request)
    stream, max_output, n = validate_chat(body)
    catalogue = svc.settings.catalogue
    model = model_of(body, catalogue.models)
    request.ctx.model = model.id
    if n > 1 and any(catalogue.providers[r.provider].protocol is not Protocol.OPENAI for r in model.routes):
        raise Problem(400, "invalid_request", "n > 1 is not supported for this model's provider", param="n")
    return await exchange.relay(
        svc, request, caller, model, body, stream,
        endpoint="/v1/chat/completions",
        prompt_tokens_bound=prompts.openai_bound(body, len(request.body)),
        max_output_tokens=max_output * n,
        adapter_for=adapter_for,
    )


@blueprint.get("/models")
async def models(request: Request) -> HTTPResponse:
    svc = services(request)
    caller = await svc.keys.authenticate(request)
    refusal = caller.refusal()
    if refusal is not None:
        raise refusal
    catalogue = svc.settings.catalogue
    plan = catalogue.plans.get(caller.plan_id) if caller.plan_id is not None else None
    data = [
        {"id": model_id, "object": "model", "created": MODELS_CREATED, "owned_by": "tokensea"}
        for model_id in sorted(catalogue.models)
        if model_allowed(model_id, caller.models, plan)
    ]
    return respond({"object": "list", "data": data})
