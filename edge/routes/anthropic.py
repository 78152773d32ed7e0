"""Anthropic-compatible routes: ``POST /v1/messages`` and ``/v1/messages/count_tokens``."""

from __future__ import annotations

from typing import Any

import orjson
from sanic import Blueprint, HTTPResponse, Request

from domain.catalogue import Protocol, model_allowed
from edge.auth import services
from edge.errors import Problem
from edge.http import respond
from edge.relay import exchange, prompts, tokens
from edge.relay.anthropic_native import AnthropicToAnthropic
from edge.relay.protocol import Adapter
from edge.relay.translate.anthropic_to_openai import AnthropicToOpenAI
from edge.relay.upstream import UpstreamError, open_call
from edge.routes.openai import json_object, model_of, positive_int

blueprint = Blueprint("anthropic", url_prefix="/v1/messages")


def validate_messages(body: dict[str, Any], *, counting: bool = False) -> tuple[bool, int]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise Problem(400, "invalid_request", "messages: must be a non-empty array", param="messages")
    for number, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise Problem(400, "invalid_request", f"messages.{number}.role: must be 'user' or 'assistant'")
        if not isinstance(message.get("content"), str | list):
            raise Problem(400, "invalid_request", f"messages.{number}.content: must be a string or an array")
    system = body.get("system")
    if system is not None and not isinstance(system, str | list):
        raise Problem(400, "invalid_request", "system: must be a string or an array of blocks")
    if counting:
        return False, 0
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise Problem(400, "invalid_request", "stream: must be a boolean")
    max_tokens = positive_int(body, "max_tokens")
    if max_tokens is None:
        raise Problem(400, "invalid_request", "max_tokens: field required")
    return stream, max_tokens


def adapter_for(route_protocol: Protocol) -> Adapter:
    return AnthropicToAnthropic() if route_protocol is Protocol.ANTHROPIC else AnthropicToOpenAI()


@blueprint.post("")
async def messages(request: Request) -> HTTPResponse | None:
    svc = services(request)
    caller = await svc.keys.authenticate(request)
    body = json_object(request)
    stream, max_tokens = validate_messages(body)
    catalogue = svc.settings.catalogue
    model = model_of(body, catalogue.models)
    request.ctx.model = model.id
    return await exchange.relay(
        svc, request, caller, model, body, stream,
        endpoint="/v1/messages",
        prompt_tokens_bound=prompts.anthropic_bound(body, len(request.body)),
        max_output_tokens=max_tokens,
        adapter_for=adapter_for,
    )


@blueprint.post("/count_tokens")
async def count_tokens(request: Request) -> HTTPResponse:
    """Passed to Anthropic providers; estimated with a tokenizer for OpenAI ones. Not billed."""
    svc = services(request)
    caller = await svc.keys.authenticate(request)
    body = json_object(request)
    validate_messages(body, counting=True)
    catalogue = svc.settings.catalogue
    model = model_of(body, catalogue.models)
    request.ctx.model = model.id
    refusal = caller.refusal()
    if refusal is not None:
        raise refusal
    plan = catalogue.plans.get(caller.plan_id) if caller.plan_id is not None else None
    if not model_allowed(model.id, caller.models, plan):
        raise Problem(403, "model_not_allowed", f"this API key may not use the model '{model.id}'")
    route = model.primary
    provider = catalogue.providers[route.provider]
    headers = {"x-request-id": request.ctx.request_id}
    if provider.protocol is Protocol.ANTHROPIC:
        sent = orjson.dumps({**body, "model": route.upstream_model})
        try:
            response = await open_call(
                svc.http, svc.settings, provider, "count_tokens", sent,
                AnthropicToAnthropic().passthrough_headers(request.headers),
            )
        except UpstreamError as exc:
            raise Problem(exc.status, exc.code, exc.message) from None
        try:
            raw = await response.read()
        finally:
            response.release()
        return HTTPResponse(raw, content_type="application/json", headers=headers)
    estimate = tokens.count(prompts.prompt_text(body)) + 4 * len(body["messages"]) + 1_000 * prompts.image_count(body)
    return respond({"input_tokens": estimate}, headers=headers)
