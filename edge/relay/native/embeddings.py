"""Embeddings, OpenAI client and provider: the body passes through (the model renamed),
the answer too. ``usage.prompt_tokens`` is billed at the input price; there is no
output, and no stream."""

from __future__ import annotations

from typing import Any

from domain.catalogue import Route
from domain.usage import TokenUsage
from edge.relay import usage as usage_of
from edge.relay.protocol import Adapter


class EmbeddingsPassthrough(Adapter):
    operation = "embeddings"

    def request(self, body: dict[str, Any], route: Route, stream: bool) -> dict[str, Any]:
        return {**body, "model": route.upstream_model}

    def response(self, raw: bytes, data: dict[str, Any], model: str) -> tuple[bytes, TokenUsage | None, str]:
        reported = data.get("usage")
        usage = usage_of.from_openai(reported) if isinstance(reported, dict) else None
        if usage is not None and usage.output:  # an embedding has no output to bill
            usage = TokenUsage(input=usage.input, cache_read=usage.cache_read, cache_write=usage.cache_write)
        return raw, usage, ""
