"""``POST /v1/embeddings``, for models on OpenAI-protocol providers: relayed as sent,
billed at the input price."""

from __future__ import annotations

from typing import Any

from sanic import Blueprint, HTTPResponse, Request

from domain.catalogue import Protocol
from edge.auth import services
from edge.errors import Problem
from edge.relay import exchange
from edge.relay.native.embeddings import EmbeddingsPassthrough
from edge.relay.protocol import Adapter
from edge.routes.openai import json_object, model_of

blueprint = Blueprint("embeddings", url_prefix="/v1")


def _valid_input(value: Any) -> bool:
    """A string, or a non-empty array of strings, of token ids, or of arrays of token ids."""
    if isinstance(value, str):
        return True
    if not isinstance(value, list) or not value:
        return False
    return all(
        isinstance(item, str)
        or (isinstance(item, int) and not isinstance(item, bool))
        or (isinstance(item, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in item))
        for item in value
    )


def _adapter(route_protocol: Protocol) -> Adapter:
    return EmbeddingsPassthrough()


@blueprint.post("/embeddings")
async def embeddings(request: Request) -> HTTPResponse | None:
    svc = services(request)
    caller = await svc.keys.authenticate(request)
    body = json_object(request)
    if not _valid_input(body.get("input")):
        raise Problem(400, "invalid_request", "input must be a string or a non-empty array of strings or token ids",
                      param="input")
    catalogue = svc.settings.catalogue
    model = model_of(body, catalogue.models)
    request.ctx.model = model.id
    if any(catalogue.providers[route.provider].protocol is not Protocol.OPENAI for route in model.routes):
        raise Problem(400, "invalid_request", f"the model '{model.id}' is not served by an embeddings API", param="model")
    return await exchange.relay(
        svc, request, caller, model, body, False,
        endpoint="/v1/embeddings",
        prompt_tokens_bound=max(len(request.body), 1),  # a token of input is at least a byte of the body (ids too)
        output=None,
        adapter_for=_adapter,
    )
