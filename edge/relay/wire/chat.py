"""OpenAI Chat Completions on the wire: ``data:`` chunks, the ``[DONE]`` terminator, an
error as a ``data: {"error": ...}`` chunk (the SDK raises on it)."""

from __future__ import annotations

from typing import Any

import orjson

from edge.relay.sse import frame
from edge.relay.tokens import Counter

DONE = b"data: [DONE]\n\n"
LIMIT_FIELDS = ("max_completion_tokens", "max_tokens")  # the output limit, newest name first


def error_frame(message: str, kind: str) -> bytes:
    return frame(orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": kind}}))


def answer_text(data: dict[str, Any]) -> str:
    """The generated text of a whole answer (content, tool names and arguments)."""
    parts: list[str] = []
    for choice in data.get("choices") or ():
        message = choice.get("message") if isinstance(choice, dict) else None
        if isinstance(message, dict):
            if isinstance(message.get("content"), str):
                parts.append(message["content"])
            for call in message.get("tool_calls") or ():
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict):
                    parts.append(str(function.get("name") or ""))
                    parts.append(str(function.get("arguments") or ""))
    return "".join(parts)


def count_delta(delta: dict[str, Any], counter: Counter) -> None:
    """Add a streamed delta's generated text to ``counter``."""
    for key in ("content", "refusal", "reasoning_content"):
        value = delta.get(key)
        if isinstance(value, str):
            counter.add(value)
    for call in delta.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            for key in ("name", "arguments"):
                if isinstance(function.get(key), str):
                    counter.add(function[key])


def set_limit(body: dict[str, Any], limit: int) -> None:
    """Send ``limit`` as the output limit: each limit field the client used, lowered to
    it; ``max_completion_tokens`` if it used none."""
    present = [name for name in LIMIT_FIELDS if isinstance(body.get(name), int)]
    for name in present:
        body[name] = min(body[name], limit)
    if not present:
        body["max_completion_tokens"] = limit
