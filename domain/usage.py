"""Token usage by kind, in one convention: every kind counted once.

``input`` is the prompt tokens billed at the input price, *excluding* cached ones;
``cache_read`` and ``cache_write`` are the prompt tokens read from or written to the
provider's prompt cache; ``output`` is every generated token (reasoning included).
OpenAI's ``prompt_tokens`` includes ``cached_tokens``; Anthropic's ``input_tokens``
excludes both cache kinds. The edge converts each provider's report into this one
shape, and converts back when it shows usage to a client.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from domain.errors import InvalidUsage

MAX_TOKENS_PER_KIND = 100_000_000


class TokenKind(StrEnum):
    INPUT = "input"
    OUTPUT = "output"
    CACHE_READ = "cache_read"
    CACHE_WRITE = "cache_write"


def _count(value: object, kind: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidUsage(f"{kind} tokens must be an integer, not {type(value).__name__}")
    if value < 0 or value > MAX_TOKENS_PER_KIND:
        raise InvalidUsage(f"{kind} tokens out of range: {value}")
    return value


@dataclass(frozen=True, slots=True)
class TokenUsage:
    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0

    def __post_init__(self) -> None:
        for kind in TokenKind:
            _count(getattr(self, kind.value), kind.value)

    @classmethod
    def from_mapping(cls, counts: Mapping[str, object]) -> TokenUsage:
        """Build from ``{"input": 10, ...}``; unknown kinds are an error, not ignored."""
        known = {kind.value for kind in TokenKind}
        unknown = set(counts) - known
        if unknown:
            raise InvalidUsage(f"unknown token kinds: {', '.join(sorted(unknown))}")
        return cls(**{kind: _count(value, kind) for kind, value in counts.items()})

    @property
    def prompt_total(self) -> int:
        """All prompt-side tokens: what OpenAI calls ``prompt_tokens``."""
        return self.input + self.cache_read + self.cache_write

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            input=self.input + other.input,
            output=self.output + other.output,
            cache_read=self.cache_read + other.cache_read,
            cache_write=self.cache_write + other.cache_write,
        )
