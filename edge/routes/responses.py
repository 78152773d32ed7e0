"""``POST /v1/responses``, the OpenAI Responses API, for any model: relayed as sent to
OpenAI-protocol providers, translated to Messages for Anthropic-protocol ones."""

from __future__ import annotations

from typing import Any

from sanic import Blueprint, HTTPResponse, Request

from domain.catalogue import Protocol
from edge.auth import services
from edge.errors import Problem
from edge.relay import exchange, prompts
from edge.relay.meter import OutputLimit
from edge.relay.native.responses import ResponsesPassthrough
from edge.relay.protocol import Adapter
from edge.relay.translate.responses_to_messages import ResponsesToMessages
from edge.routes.openai import json_object, model_of, positive_int, stream_flag

blueprint = Blueprint("responses", url_prefix="/v1")

STATE = ("previous_response_id", "conversation", "prompt")  # what the provider may keep for the call


def validate_responses(body: dict[str, Any]) -> tuple[bool, OutputLimit]:
    """``stream`` and the client's output limit; or a 400 naming the field."""
    items = body.get("input")
    if items is None and not any(body.get(name) for name in STATE):
        raise Problem(400, "invalid_request", "input is required (a string or an array of items)", param="input")
    if items is not None and not isinstance(items, str | list):
        raise Problem(400, "invalid_request", "input must be a string or an array of items", param="input")
    for number, item in enumerate(items if isinstance(items, list) else ()):
        if not isinstance(item, dict):
            raise Problem(400, "invalid_request", f"input[{number}] must be an object", param="input")
    for name in ("tools", "include"):
        value = body.get(name)
        if value is not None and not isinstance(value, list):
            raise Problem(400, "invalid_request", f"{name} must be an array", param=name)
    for number, tool in enumerate(body.get("tools") or ()):
        if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
            raise Problem(400, "invalid_request", f"tools[{number}] must be an object with a type", param="tools")
    for name in ("instructions", "previous_response_id"):
        if body.get(name) is not None and not isinstance(body[name], str):
            raise Problem(400, "invalid_request", f"{name} must be a string", param=name)
    if body.get("background"):
        # The provider would answer later, to a poll TokenSea does not relay: it could not be billed.
        raise Problem(400, "invalid_request", "background responses are not available through TokenSea", param="background")
    return stream_flag(body), OutputLimit(positive_int(body, "max_output_tokens"))


def adapter_for(route_protocol: Protocol) -> Adapter:
    return ResponsesPassthrough() if route_protocol is Protocol.OPENAI else ResponsesToMessages()


@blueprint.post("/responses")
async def create_response(request: Request) -> HTTPResponse | None:
    svc = services(request)
    caller = await svc.keys.authenticate(request)
    body = json_object(request)
    stream, output = validate_responses(body)
    model = model_of(body, svc.settings.catalogue.models)
    request.ctx.model = model.id
    return await exchange.relay(
        svc, request, caller, model, body, stream,
        endpoint="/v1/responses",
        prompt_tokens_bound=prompts.responses_bound(body, len(request.body)),
        output=output,
        adapter_for=adapter_for,
    )
