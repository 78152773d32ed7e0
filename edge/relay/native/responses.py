"""Responses client, Responses provider: the body and every event pass through, the
model name and the output limit aside.

Usage arrives once, in the terminator (``response.completed`` or
``response.incomplete``), which waits for the charge. A ``previous_response_id`` goes
to the provider as sent: it keeps the conversation, TokenSea keeps none.
"""

from __future__ import annotations

from typing import Any

import orjson

from domain.catalogue import Route
from domain.usage import TokenUsage
from edge.relay import usage as usage_of
from edge.relay.protocol import StreamingAdapter, StreamProcessor
from edge.relay.sse import Event
from edge.relay.wire import responses


class ResponsesPassthroughStream(StreamProcessor):
    def __init__(self, model: str, request: dict[str, Any]) -> None:
        super().__init__()
        self._terminator = b""
        self._sequence = -1  # the last sequence number forwarded
        self._response = responses.skeleton("resp_unknown", model, request)

    def feed(self, event: Event) -> bytes:
        data = self.decode(event.data)
        if data is None:
            return b""
        kind = data.get("type") or event.name
        sequence = data.get("sequence_number")
        if isinstance(sequence, int) and not isinstance(sequence, bool):
            self._sequence = max(self._sequence, sequence)
        if kind in responses.DELTAS:
            delta = data.get("delta")
            if isinstance(delta, str):
                self.delivered.add(delta)
        elif kind == "response.created":
            created = data.get("response")
            if isinstance(created, dict) and isinstance(created.get("id"), str):
                self._response = {**self._response, "id": created["id"]}
        elif kind in responses.TERMINATORS:
            final = data["response"]
            if not isinstance(final, dict):
                raise TypeError("a terminator without its response")
            self._usage_of(final)
            self.finished = True
            self._terminator = event.raw
            return b""
        elif kind == "response.failed":
            failed = data.get("response")
            self._usage_of(failed)
            error = failed.get("error") if isinstance(failed, dict) else None
            self.reported_error(error or "the response failed")
            return b""
        elif kind == "error":
            error = data.get("error")
            self.reported_error(error if isinstance(error, dict) else data)
            return b""
        return event.raw

    def _usage_of(self, response: Any) -> None:
        reported = response.get("usage") if isinstance(response, dict) else None
        if isinstance(reported, dict):
            self.usage = usage_of.from_responses(reported)

    def closing(self) -> bytes:
        return self._terminator

    def error(self, message: str, kind: str) -> bytes:
        return responses.error_frames(responses.Events(self._sequence + 1), self._response, message, kind)


class ResponsesPassthrough(StreamingAdapter):
    operation = "responses"

    def request(self, body: dict[str, Any], route: Route, stream: bool) -> dict[str, Any]:
        return {**body, "model": route.upstream_model}

    def encode(self, request: dict[str, Any], limit: int | None) -> bytes:
        if limit is not None:
            request["max_output_tokens"] = limit
        return orjson.dumps(request)

    def response(self, raw: bytes, data: dict[str, Any], model: str) -> tuple[bytes, TokenUsage | None, str]:
        reported = data.get("usage")
        usage = usage_of.from_responses(reported) if isinstance(reported, dict) else None
        return raw, usage, responses.answer_text(data)

    def stream(self, body: dict[str, Any], model: str) -> StreamProcessor:
        return ResponsesPassthroughStream(model, body)
