"""OpenAI client, OpenAI provider: the body passes through, the model name and the
usage request aside.

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
from edge.relay.protocol import Adapter, StreamProcessor
from edge.relay.sse import Event, frame

DONE = b"data: [DONE]\n\n"


def answer_text(data: dict[str, Any]) -> str:
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


def error_frame(message: str, kind: str) -> bytes:
    return frame(orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": kind}}))


class OpenAIStream(StreamProcessor):
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
                self._count(delta)
        reported = chunk.get("usage")
        if isinstance(reported, dict):
            self.usage = usage_of.from_openai(reported)
            if not choices and not self.client_wants_usage:
                return b""  # the usage-only chunk the client did not ask for
        return event.raw

    def _count(self, delta: dict[str, Any]) -> None:
        for key in ("content", "refusal", "reasoning_content"):
            value = delta.get(key)
            if isinstance(value, str):
                self.delivered.add(value)
        for call in delta.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                for key in ("name", "arguments"):
                    if isinstance(function.get(key), str):
                        self.delivered.add(function[key])

    def closing(self) -> bytes:
        return DONE

    def error(self, message: str, kind: str) -> bytes:
        return error_frame(message, kind)


class OpenAIToOpenAI(Adapter):
    operation = "chat"

    def request(self, body: dict[str, Any], route: Route, stream: bool) -> bytes:
        sent = dict(body)
        sent["model"] = route.upstream_model
        if stream:
            options = body.get("stream_options")
            sent["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
        return orjson.dumps(sent)

    def response(self, raw: bytes, data: dict[str, Any], model: str) -> tuple[bytes, TokenUsage | None, str]:
        reported = data.get("usage")
        usage = usage_of.from_openai(reported) if isinstance(reported, dict) else None
        return raw, usage, answer_text(data)

    def stream(self, body: dict[str, Any], model: str) -> StreamProcessor:
        options = body.get("stream_options")
        return OpenAIStream(isinstance(options, dict) and options.get("include_usage") is True)
