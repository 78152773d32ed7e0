"""Messages client, Messages provider: the body and every event pass through, the model
name and the output limit aside.

``message_start`` carries the prompt's usage, ``message_delta`` the (cumulative) output;
``message_stop`` is the terminator and waits for the charge. ``anthropic-beta`` and
``anthropic-version`` reach the provider as the client sent them.
"""

from __future__ import annotations

from typing import Any

import orjson

from domain.catalogue import Route
from domain.usage import TokenUsage
from edge.relay import usage as usage_of
from edge.relay.protocol import StreamingAdapter, StreamProcessor
from edge.relay.sse import Event
from edge.relay.upstream import ANTHROPIC_VERSION
from edge.relay.wire import messages


class MessagesPassthroughStream(StreamProcessor):
    def __init__(self) -> None:
        super().__init__()
        self._prompt: dict[str, Any] = {}

    def feed(self, event: Event) -> bytes:
        kind = event.name
        if kind == "ping":
            return event.raw
        data = self.decode(event.data)
        if data is None:
            return b""
        kind = kind or data.get("type")
        if kind == "content_block_delta":
            delta = data.get("delta") or {}
            for key in ("text", "partial_json", "thinking"):
                if isinstance(delta.get(key), str):
                    self.delivered.add(delta[key])
        elif kind == "message_start":
            reported = (data.get("message") or {}).get("usage") or {}
            self._prompt = {k: v for k, v in reported.items() if k != "output_tokens"}
            if "input_tokens" in self._prompt:
                self.prompt_usage = usage_of.from_anthropic(self._prompt)
        elif kind == "message_delta":
            reported = data.get("usage") or {}
            if "output_tokens" in reported and "input_tokens" in {**self._prompt, **reported}:
                self.usage = usage_of.from_anthropic({**self._prompt, **reported})
        elif kind == "message_stop":
            self.finished = True
            return b""
        elif kind == "error":
            self.reported_error(data.get("error"))
            return b""
        return event.raw

    def closing(self) -> bytes:
        return messages.MESSAGE_STOP

    def error(self, message: str, kind: str) -> bytes:
        return messages.error_frame(message, kind)


def anthropic_headers(headers: Any) -> dict[str, str]:
    """``anthropic-version`` and ``anthropic-beta`` as the client sent them."""
    sent = {"anthropic-version": headers.get("anthropic-version") or ANTHROPIC_VERSION}
    beta = headers.getall("anthropic-beta", []) if hasattr(headers, "getall") else []
    if beta:
        sent["anthropic-beta"] = ",".join(beta)
    return sent


class MessagesPassthrough(StreamingAdapter):
    operation = "messages"

    def request(self, body: dict[str, Any], route: Route, stream: bool) -> dict[str, Any]:
        return {**body, "model": route.upstream_model}

    def encode(self, request: dict[str, Any], limit: int | None) -> bytes:
        if limit is not None:
            request["max_tokens"] = limit
        return orjson.dumps(request)

    def response(self, raw: bytes, data: dict[str, Any], model: str) -> tuple[bytes, TokenUsage | None, str]:
        reported = data.get("usage")
        usage = usage_of.from_anthropic(reported) if isinstance(reported, dict) else None
        return raw, usage, messages.answer_text(data)

    def stream(self, body: dict[str, Any], model: str) -> StreamProcessor:
        return MessagesPassthroughStream()

    def passthrough_headers(self, headers: Any) -> dict[str, str]:
        return anthropic_headers(headers)
