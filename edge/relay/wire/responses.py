"""OpenAI Responses on the wire.

A stream is typed events (``event: <type>``), each numbered by ``sequence_number``.
It opens with ``response.created``; each output item is announced by
``response.output_item.added``, grows by deltas and ends with
``response.output_item.done`` (which repeats it whole); ``response.completed`` (or
``response.incomplete``, when the output limit cut it short) ends the stream and carries
the whole response and its usage: that event is the terminator the relay holds back
until the charge is durable.

A stream that breaks ends with an ``error`` event whose ``error`` object makes the openai
SDK raise (OpenAI's own streams nest it so; the event's top-level ``code`` and
``message`` are what the SDK's type declares), then ``response.failed``, the lifecycle's
end that Codex and strict clients wait for.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from edge.relay.sse import frame

TERMINATORS = frozenset({"response.completed", "response.incomplete"})
DELTAS = frozenset({
    "response.output_text.delta",
    "response.refusal.delta",
    "response.function_call_arguments.delta",
    "response.custom_tool_call_input.delta",
    "response.reasoning_text.delta",
    "response.reasoning_summary_text.delta",
})
PING = b": ping\n\n"  # a comment: keeps the connection alive, every SSE reader skips it

# What a response echoes of its request.
_ECHOED = ("instructions", "max_output_tokens", "metadata", "previous_response_id", "reasoning", "store",
           "temperature", "text", "top_p", "truncation", "user")


class Events:
    """Frames events in order, numbering them as the protocol requires."""

    __slots__ = ("next",)

    def __init__(self, start: int = 0) -> None:
        self.next = start

    def __call__(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": self.next, **fields}
        self.next += 1
        return frame(orjson.dumps(data), kind)


def skeleton(response_id: str, model: str, request: dict[str, Any], created_at: int | None = None) -> dict[str, Any]:
    """A response object with its request's settings echoed, no output and no usage yet."""
    response: dict[str, Any] = {
        "id": response_id,
        "object": "response",
        "created_at": created_at if created_at is not None else int(time.time()),
        "status": "in_progress",
        "error": None,
        "incomplete_details": None,
        "model": model,
        "output": [],
        "parallel_tool_calls": request.get("parallel_tool_calls") is not False,
        "tool_choice": request.get("tool_choice") or "auto",
        "tools": request.get("tools") or [],
        "usage": None,
    }
    for name in _ECHOED:
        if request.get(name) is not None:
            response[name] = request[name]
    return response


def error_frames(events: Events, response: dict[str, Any], message: str, kind: str) -> bytes:
    """The ``error`` event, then ``response.failed`` for ``response``."""
    error = events("error", code=kind, message=message, param=None,
                   error={"type": kind, "code": kind, "message": message, "param": None})
    failed = {**response, "status": "failed", "error": {"code": "server_error", "message": message}}
    return error + events("response.failed", response=failed)


def answer_text(data: dict[str, Any]) -> str:
    """The generated text of a whole response (text, refusals, reasoning, tool calls)."""
    parts: list[str] = []
    for item in data.get("output") or ():
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind in ("message", "reasoning"):
            for part in [*(item.get("content") or ()), *(item.get("summary") or ())]:
                if isinstance(part, dict):
                    value = part.get("text") if "text" in part else part.get("refusal")
                    if isinstance(value, str):
                        parts.append(value)
        elif kind in ("function_call", "custom_tool_call"):
            parts.append(str(item.get("name") or ""))
            parts.append(str(item.get("arguments") or item.get("input") or ""))
    return "".join(parts)
