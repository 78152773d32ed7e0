"""What a request's prompt weighs: a safe upper bound for admission, and its text for
estimates.

The bound is the body's size in bytes, because a token is never shorter than one byte
of the text it encodes; JSON punctuation more than covers per-message overhead. Image
payloads are taken out (their bytes say nothing of their tokens) and a generous
per-image allowance put in; tools add an allowance for the tool-use preamble the
providers prepend.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

IMAGE_TOKENS = 6_000  # above any provider's per-image count at its largest size
TOOLS_TOKENS = 1_000  # the tool-use system preamble (Anthropic documents ~350)
# A Responses call that continues state the provider keeps (previous_response_id, a
# conversation, a stored prompt) has a prompt the body does not show: bound it by the
# largest context window of a current OpenAI model.
STORED_CONTEXT_TOKENS = 1_050_000


def _openai_parts(body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for message in body.get("messages") or ():
        if isinstance(message, dict) and isinstance(message.get("content"), list):
            yield from (part for part in message["content"] if isinstance(part, dict))


def _anthropic_blocks(body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for message in body.get("messages") or ():
        if isinstance(message, dict) and isinstance(message.get("content"), list):
            for block in message["content"]:
                if isinstance(block, dict):
                    yield block
                    if block.get("type") == "tool_result" and isinstance(block.get("content"), list):
                        yield from (b for b in block["content"] if isinstance(b, dict))


def openai_bound(body: dict[str, Any], body_bytes: int) -> int:
    bound = body_bytes
    for part in _openai_parts(body):
        if part.get("type") == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            bound += IMAGE_TOKENS - (len(url) if isinstance(url, str) else 0)
    if body.get("tools") or body.get("functions") or _asks_json(body.get("response_format")):
        bound += TOOLS_TOKENS
    return max(bound, 1)


def _asks_json(value: Any) -> bool:
    return isinstance(value, dict) and value.get("type") in ("json_object", "json_schema")


def anthropic_bound(body: dict[str, Any], body_bytes: int) -> int:
    bound = body_bytes
    for block in _anthropic_blocks(body):
        if block.get("type") == "image":
            source = block.get("source")
            payload = (source.get("data") or source.get("url") or "") if isinstance(source, dict) else ""
            bound += IMAGE_TOKENS - (len(payload) if isinstance(payload, str) else 0)
    if body.get("tools"):
        bound += TOOLS_TOKENS
    return max(bound, 1)


def _responses_parts(body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    items = body.get("input")
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, dict):
            continue
        for key in ("content", "output"):
            if isinstance(item.get(key), list):
                yield from (part for part in item[key] if isinstance(part, dict))


def responses_bound(body: dict[str, Any], body_bytes: int) -> int:
    bound = body_bytes
    for part in _responses_parts(body):
        if part.get("type") == "input_image":
            url = part.get("image_url")
            bound += IMAGE_TOKENS - (len(url) if isinstance(url, str) else 0)
    text = body.get("text")
    if body.get("tools") or (isinstance(text, dict) and _asks_json(text.get("format"))):
        bound += TOOLS_TOKENS
    if any(body.get(name) for name in ("previous_response_id", "conversation", "prompt")):
        bound += STORED_CONTEXT_TOKENS
    return max(bound, 1)


_NOT_TEXT = frozenset({"data", "url", "cache_control", "type", "role", "id", "tool_use_id", "tool_call_id", "call_id",
                       "status", "encrypted_content", "signature"})


def _texts(value: Any) -> Iterator[str]:
    """Every string in a JSON value except binary payloads (for a tokenizer estimate)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)
    elif isinstance(value, dict):
        if value.get("type") in ("image", "image_url", "document", "input_image", "input_file"):
            return
        for key, item in value.items():
            if key not in _NOT_TEXT:
                yield from _texts(item)


def prompt_text(body: dict[str, Any]) -> str:
    """The prompt's text, in any protocol (messages and system, input and instructions)."""
    parts = list(_texts(body.get("messages")))
    parts += _texts(body.get("system"))
    parts += _texts(body.get("input"))
    parts += _texts(body.get("instructions"))
    parts += _texts(body.get("tools"))
    return "\n".join(parts)


def image_count(body: dict[str, Any]) -> int:
    return sum(1 for p in _openai_parts(body) if p.get("type") == "image_url") + sum(
        1 for b in _anthropic_blocks(body) if b.get("type") == "image"
    )
