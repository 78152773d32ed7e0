"""What a pair of protocols (the client's, the provider's) must supply to the relay.

An ``Adapter`` turns the client's request into the provider's, and the provider's
answer into the client's; for streams it makes a ``StreamProcessor``, which consumes the
provider's events one by one and returns the client's frames at once (nothing is held
back but the stream's final terminator, which waits for the charge to be durable).

A request is prepared in two steps: ``request`` before admission (a body the provider
cannot take is the client's 400 before anything is reserved), ``encode`` after it, with
the output limit admission granted, so the body is encoded once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import orjson

from domain.catalogue import Route
from domain.usage import TokenUsage
from edge.relay.sse import Event
from edge.relay.tokens import Counter


class StreamProcessor(ABC):
    def __init__(self) -> None:
        self.delivered = Counter()  # generated text the client has been sent
        self.usage: TokenUsage | None = None  # final usage, once the provider reports it
        self.prompt_usage: TokenUsage | None = None  # prompt-side usage known early (Anthropic)
        self.finished = False  # the provider's terminator arrived
        self.upstream_error: str | None = None  # the provider reported an error mid-stream

    def decode(self, data: str) -> dict[str, Any] | None:
        """An event's JSON object, or None (and the stream marked broken) if it is not one."""
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError:
            value = None
        if not isinstance(value, dict):
            self.upstream_error = "the provider sent a malformed event"
            return None
        return value

    def reported_error(self, error: Any) -> None:
        """The provider's own error event: keep its message, the relay sends the client's."""
        self.upstream_error = str(error.get("message") if isinstance(error, dict) else error)[:500]

    @property
    def reported_prompt(self) -> TokenUsage | None:
        """The prompt's usage as the provider reported it, if it did (early or at the end)."""
        if self.prompt_usage is not None:
            return self.prompt_usage
        if self.usage is not None:
            return TokenUsage(input=self.usage.input, cache_read=self.usage.cache_read, cache_write=self.usage.cache_write)
        return None

    @abstractmethod
    def feed(self, event: Event) -> bytes:
        """Frames for the client now (possibly empty)."""

    @abstractmethod
    def closing(self) -> bytes:
        """The client's terminator, sent once the charge is durable."""

    @abstractmethod
    def error(self, message: str, kind: str) -> bytes:
        """An error event in the client's protocol, before closing the stream."""


class Adapter(ABC):
    #: the provider operation: ``chat``, ``messages``, ``responses`` or ``embeddings``
    operation: str

    @abstractmethod
    def request(self, body: dict[str, Any], route: Route, stream: bool) -> dict[str, Any]:
        """The provider's request, all but its output limit; a 400 ``Problem`` if the
        provider's protocol cannot express it."""

    def encode(self, request: dict[str, Any], limit: int | None) -> bytes:
        """The provider's body, with ``limit`` (the output limit admission granted) set."""
        return orjson.dumps(request)

    @abstractmethod
    def response(self, raw: bytes, data: dict[str, Any], model: str) -> tuple[bytes, TokenUsage | None, str]:
        """The client's body, the usage the provider reported (if any), and the answer's text."""

    def passthrough_headers(self, headers: Any) -> dict[str, str]:
        """Client headers the provider should see (``anthropic-beta``)."""
        return {}


class StreamingAdapter(Adapter):
    """An adapter for an operation that can stream (all but embeddings)."""

    @abstractmethod
    def stream(self, body: dict[str, Any], model: str) -> StreamProcessor:
        """A processor for one streamed answer."""
