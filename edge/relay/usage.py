"""Each protocol's usage report, read into one ``TokenUsage`` and written back.

OpenAI Chat Completions: ``prompt_tokens`` *includes* ``prompt_tokens_details.cached_tokens``
(cache reads) and ``cache_write_tokens``; OpenAI Responses likewise: ``input_tokens``
*includes* ``input_tokens_details.cached_tokens`` and ``cache_write_tokens``. Anthropic: ``input_tokens`` *excludes*
``cache_read_input_tokens`` and ``cache_creation_input_tokens``. ``TokenUsage`` counts
each kind once, so both directions are exact and a cached token is billed once, at
its own price.
"""

from __future__ import annotations

from typing import Any

from domain.errors import InvalidUsage
from domain.usage import TokenUsage


def _int(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidUsage(f"not a token count: {value!r}")
    return value


def _cache_included(prompt: Any, output: Any, details: dict[str, Any]) -> TokenUsage:
    """OpenAI's convention: the prompt count includes the cached and cache-written tokens."""
    cache_read = _int(details.get("cached_tokens"))
    cache_write = _int(details.get("cache_write_tokens"))
    return TokenUsage(input=max(_int(prompt) - cache_read - cache_write, 0), output=_int(output),
                      cache_read=cache_read, cache_write=cache_write)


def from_openai(usage: dict[str, Any]) -> TokenUsage:
    return _cache_included(usage.get("prompt_tokens"), usage.get("completion_tokens"),
                           usage.get("prompt_tokens_details") or {})


def to_openai(usage: TokenUsage) -> dict[str, Any]:
    prompt = usage.prompt_total
    details: dict[str, Any] = {"cached_tokens": usage.cache_read}
    if usage.cache_write:
        details["cache_write_tokens"] = usage.cache_write
    return {
        "prompt_tokens": prompt,
        "completion_tokens": usage.output,
        "total_tokens": prompt + usage.output,
        "prompt_tokens_details": details,
    }


def from_anthropic(usage: dict[str, Any]) -> TokenUsage:
    return TokenUsage(
        input=_int(usage.get("input_tokens")),
        output=_int(usage.get("output_tokens")),
        cache_read=_int(usage.get("cache_read_input_tokens")),
        cache_write=_int(usage.get("cache_creation_input_tokens")),
    )


def to_anthropic(usage: TokenUsage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input,
        "output_tokens": usage.output,
        "cache_creation_input_tokens": usage.cache_write,
        "cache_read_input_tokens": usage.cache_read,
    }


def from_responses(usage: dict[str, Any]) -> TokenUsage:
    """OpenAI Responses: ``input_tokens`` includes ``cached_tokens`` and
    ``cache_write_tokens``; ``output_tokens`` includes the reasoning tokens."""
    return _cache_included(usage.get("input_tokens"), usage.get("output_tokens"),
                           usage.get("input_tokens_details") or {})


def to_responses(usage: TokenUsage) -> dict[str, Any]:
    prompt = usage.prompt_total
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": usage.cache_read, "cache_write_tokens": usage.cache_write},
        "output_tokens": usage.output,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + usage.output,
    }
