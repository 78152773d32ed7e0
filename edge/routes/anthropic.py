"""Anthropic-compatible routes: ``POST /v1/messages`` and ``/v1/messages/count_tokens``."""

from __future__ import annotations

from typing import Any

import orjson
from sanic import Blueprint, HTTPResponse, Request

from domain.catalogue import Protocol
from edge.auth import services
from edge.errors import Problem
from edge.http import respond
from edge.relay import access, exchange, prompts, tokens
from edge.relay.meter import OutputLimit
from edge.relay.native.messages import MessagesPassthrough, anthropic_headers
from edge.relay.protocol import Adapter
from edge.relay.translate.messages_to_chat import MessagesToChat
from edge.relay.upstream import UpstreamError, open_call
from edge.routes.openai import json_object, model_of, positive_int

blueprint = Blueprint("anthropic", url_prefix="/v1/messages")

# Claude Code puts system-role messages among the turns (for models it does not know).
ROLES = ("user", "assistant", "system")


def validate_messages(body: dict[str, Any], *, counting: bool = False) -> tuple[bool, int]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise Problem(400, "invalid_request", "messages: must be a non-empty array", param="messages")
    for number, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise Problem(400, "invalid_request", f"messages.{number}.role: must be 'user', 'assistant' or 'system'")
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
    return MessagesPassthrough() if route_protocol is Protocol.ANTHROPIC else MessagesToChat()


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
        output=OutputLimit(max_tokens),
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
    access.require(caller, model.id, catalogue)
    route = model.primary
    provider = catalogue.providers[route.provider]
    headers = {"x-request-id": request.ctx.request_id}
    if provider.protocol is Protocol.ANTHROPIC:
        sent = orjson.dumps({**body, "model": route.upstream_model})
        try:
            response = await open_call(
                svc.http, svc.settings, provider, "count_tokens", sent,
                anthropic_headers(request.headers),
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
