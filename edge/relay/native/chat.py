"""Chat Completions client, Chat Completions provider: the body passes through, the
model name, the output limit and the usage request aside.

Streams always ask the provider for usage (``stream_options.include_usage``); the
usage-only chunk reaches the client only if it asked for it. The ``[DONE]`` terminator
waits for the charge.
"""

from __future__ import annotations

from typing import Any

import orjson

from domain.catalogue import Route
from domain.usage import TokenUsage
from edge.relay import usage as usage_of
from edge.relay.protocol import StreamingAdapter, StreamProcessor
from edge.relay.sse import Event
from edge.relay.wire import chat


def wants_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


class ChatPassthroughStream(StreamProcessor):
    def __init__(self, client_wants_usage: bool) -> None:
        super().__init__()
        self.client_wants_usage = client_wants_usage

    def feed(self, event: Event) -> bytes:
        data = event.data
        if data == "[DONE]":
            self.finished = True
            return b""
        chunk = self.decode(data)
        if chunk is None:
            return b""
        if chunk.get("error"):
            self.reported_error(chunk.get("error"))
            return b""  # the relay sends its own error frame, then closes
        choices = chunk.get("choices")
        for choice in choices or ():
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if isinstance(delta, dict):
                chat.count_delta(delta, self.delivered)
        reported = chunk.get("usage")
        if isinstance(reported, dict):
            self.usage = usage_of.from_openai(reported)
            if not choices and not self.client_wants_usage:
                return b""  # the usage-only chunk the client did not ask for
        return event.raw

    def closing(self) -> bytes:
        return chat.DONE

    def error(self, message: str, kind: str) -> bytes:
        return chat.error_frame(message, kind)


class ChatPassthrough(StreamingAdapter):
    operation = "chat"

    def request(self, body: dict[str, Any], route: Route, stream: bool) -> dict[str, Any]:
        sent = dict(body)
        sent["model"] = route.upstream_model
        if stream:
            options = body.get("stream_options")
            sent["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
        return sent

    def encode(self, request: dict[str, Any], limit: int | None) -> bytes:
        if limit is not None:
            chat.set_limit(request, limit)
        return orjson.dumps(request)

    def response(self, raw: bytes, data: dict[str, Any], model: str) -> tuple[bytes, TokenUsage | None, str]:
        reported = data.get("usage")
        usage = usage_of.from_openai(reported) if isinstance(reported, dict) else None
        return raw, usage, chat.answer_text(data)

    def stream(self, body: dict[str, Any], model: str) -> StreamProcessor:
        return ChatPassthroughStream(wants_usage(body))
