"""``GET /`` and ``HEAD /`` when the console is off (``[server] console = false``): what
a client that probes the base URL (Claude Code does, with ``HEAD /``) or a person with
curl finds there. With the console on, its page answers ``/`` instead."""

from __future__ import annotations

from sanic import Blueprint, HTTPResponse, Request

from edge.http import respond

blueprint = Blueprint("root")


@blueprint.route("/", methods=["GET", "HEAD"])
async def describe(request: Request) -> HTTPResponse:
    return respond({
        "name": "TokenSea",
        "description": "LLM API gateway: OpenAI and Anthropic protocols for every model, billed by an event-sourced ledger",
        "endpoints": {"openai": "/v1", "anthropic": "/v1/messages", "docs": "/docs", "health": "/healthz"},
    })
