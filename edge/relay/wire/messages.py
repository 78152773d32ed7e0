"""Anthropic Messages on the wire: named events, the ``message_stop`` terminator, an
error as ``event: error``."""

from __future__ import annotations

from typing import Any

import orjson

from edge.relay.sse import frame

MESSAGE_STOP = frame(b'{"type":"message_stop"}', "message_stop")


def event(name: str, data: dict[str, Any]) -> bytes:
    return frame(orjson.dumps({"type": name, **data}), name)


def error_frame(message: str, kind: str) -> bytes:
    kind = "api_error" if kind == "upstream_error" else kind
    return frame(orjson.dumps({"type": "error", "error": {"type": kind, "message": message}}), "error")


def answer_text(data: dict[str, Any]) -> str:
    """The generated text of a whole answer (text, thinking, tool names and inputs)."""
    parts: list[str] = []
    for block in data.get("content") or ():
        if not isinstance(block, dict):
            continue
        if isinstance(block.get("text"), str):
            parts.append(block["text"])
        elif isinstance(block.get("thinking"), str):
            parts.append(block["thinking"])
        elif block.get("type") == "tool_use":
            parts.append(str(block.get("name") or ""))
            parts.append(orjson.dumps(block.get("input") or {}).decode())
    return "".join(parts)
