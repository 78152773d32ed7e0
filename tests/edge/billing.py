"""Expected costs, computed independently from what the fake upstream reported."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

GPT_TEST = (Decimal(100), Decimal(300), Decimal(10), Decimal(125))  # input, output, cache read, cache write
CLAUDE_TEST = (Decimal(300), Decimal(1500), Decimal(30), Decimal(375))
MILLION = Decimal(1_000_000)


def openai_cost(usage: dict[str, Any], price: tuple[Decimal, ...] = GPT_TEST, multiplier: str = "1") -> Decimal:
    details = usage.get("prompt_tokens_details") or {}
    cached, written = details.get("cached_tokens", 0), details.get("cache_write_tokens", 0)
    plain = usage["prompt_tokens"] - cached - written
    total = plain * price[0] + usage["completion_tokens"] * price[1] + cached * price[2] + written * price[3]
    return total * Decimal(multiplier) / MILLION


def anthropic_cost(usage: dict[str, Any], price: tuple[Decimal, ...] = CLAUDE_TEST, multiplier: str = "1") -> Decimal:
    total = (
        usage["input_tokens"] * price[0]
        + usage["output_tokens"] * price[1]
        + usage.get("cache_read_input_tokens", 0) * price[2]
        + usage.get("cache_creation_input_tokens", 0) * price[3]
    )
    return total * Decimal(multiplier) / MILLION


def responses_cost(usage: dict[str, Any], price: tuple[Decimal, ...] = GPT_TEST, multiplier: str = "1") -> Decimal:
    """OpenAI Responses usage: input_tokens includes cached and written tokens."""
    details = usage.get("input_tokens_details") or {}
    cached, written = details.get("cached_tokens", 0), details.get("cache_write_tokens", 0)
    plain = usage["input_tokens"] - cached - written
    total = plain * price[0] + usage["output_tokens"] * price[1] + cached * price[2] + written * price[3]
    return total * Decimal(multiplier) / MILLION
