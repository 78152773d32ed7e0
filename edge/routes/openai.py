"""OpenAI-compatible routes: ``POST /v1/chat/completions``, ``GET /v1/models`` and
``GET /v1/models/{id}``."""

from __future__ import annotations

from typing import Any

import orjson
from sanic import Blueprint, HTTPResponse, Request

from domain.catalogue import Model, Protocol
from edge.auth import services
from edge.errors import Problem
from edge.http import respond
from edge.relay import access, exchange, prompts
from edge.relay.meter import OutputLimit
from edge.relay.native.chat import ChatPassthrough
from edge.relay.protocol import Adapter
from edge.relay.translate.chat_to_messages import ChatToMessages

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


def stream_flag(body: dict[str, Any], param: str = "stream") -> bool:
    stream = body.get("stream", False)
    if stream is None:
        return False
    if not isinstance(stream, bool):
        raise Problem(400, "invalid_request", f"{param} must be a boolean", param="stream")
    return stream


def validate_chat(body: dict[str, Any]) -> tuple[bool, OutputLimit]:
    """``stream`` and the client's output limit; or a 400 naming the field."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise Problem(400, "invalid_request", "messages must be a non-empty array", param="messages")
    for number, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise Problem(400, "invalid_request", f"messages[{number}] must be an object with a role", param="messages")
    stream = stream_flag(body)
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise Problem(400, "invalid_request", "stream_options must be an object", param="stream_options")
    limits = [v for v in (positive_int(body, "max_tokens"), positive_int(body, "max_completion_tokens")) if v]
    n = body.get("n", 1)
    if n is None:
        n = 1
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 128:
        raise Problem(400, "invalid_request", "n must be an integer from 1 to 128", param="n")
    return stream, OutputLimit(max(limits) if limits else None, n)


def adapter_for(route_protocol: Protocol) -> Adapter:
    return ChatPassthrough() if route_protocol is Protocol.OPENAI else ChatToMessages()


@blueprint.post("/chat/completions")
async def chat_completions(request: Request) -> HTTPResponse | None:
    svc = services(request)
    caller = await svc.keys.authenticate(request)
    body = json_object(request)
    stream, output = validate_chat(body)
    catalogue = svc.settings.catalogue
    model = model_of(body, catalogue.models)
    request.ctx.model = model.id
    if output.choices > 1 and any(catalogue.providers[r.provider].protocol is not Protocol.OPENAI for r in model.routes):
        raise Problem(400, "invalid_request", "n > 1 is not supported for this model's provider", param="n")
    return await exchange.relay(
        svc, request, caller, model, body, stream,
        endpoint="/v1/chat/completions",
        prompt_tokens_bound=prompts.openai_bound(body, len(request.body)),
        output=output,
        adapter_for=adapter_for,
    )


def model_entry(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": MODELS_CREATED, "owned_by": "tokensea"}


@blueprint.get("/models")
async def models(request: Request) -> HTTPResponse:
    svc = services(request)
    caller = await svc.keys.authenticate(request)
    access.usable(caller)
    catalogue = svc.settings.catalogue
    data = [model_entry(model_id) for model_id in sorted(catalogue.models) if access.may_use(caller, model_id, catalogue)]
    return respond({"object": "list", "data": data})


@blueprint.get("/models/<model_id:path>")
async def model(request: Request, model_id: str) -> HTTPResponse:
    """One model, if this key may use it; any other is not found, as OpenAI answers."""
    svc = services(request)
    caller = await svc.keys.authenticate(request)
    access.usable(caller)
    catalogue = svc.settings.catalogue
    if model_id not in catalogue.models or not access.may_use(caller, model_id, catalogue):
        raise Problem(404, "model_not_found", f"The model '{model_id[:100]}' does not exist", param="model")
    return respond(model_entry(model_id))
