"""Mappings both directions share: stop reasons, tool choice, images, refusals."""

from __future__ import annotations

import re
from typing import Any

from edge.errors import Problem

STOP_TO_OPENAI = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "stop",
    "model_context_window_exceeded": "length",
}
STOP_TO_ANTHROPIC = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

_DATA_URL = re.compile(r"^data:(?P<media>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)$", re.DOTALL)
_TOOL_ID = re.compile(r"[^A-Za-z0-9_-]")


def refuse(message: str, param: str | None = None) -> Problem:
    return Problem(400, "unsupported_by_provider", message, param=param)


def tool_id(value: Any) -> str:
    """Anthropic accepts tool ids of ``[A-Za-z0-9_-]`` only; OpenAI ids already are."""
    text = str(value or "")
    return _TOOL_ID.sub("_", text) or "tool"


def image_to_anthropic(url: str) -> dict[str, Any]:
    match = _DATA_URL.match(url)
    if match:
        return {"type": "image", "source": {"type": "base64", "media_type": match["media"], "data": match["data"]}}
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise refuse("image_url must be an http(s) URL or a base64 data URL", "messages")


def image_to_openai(source: Any) -> dict[str, Any]:
    if isinstance(source, dict) and source.get("type") == "base64":
        return {"type": "image_url", "image_url": {"url": f"data:{source.get('media_type')};base64,{source.get('data')}"}}
    if isinstance(source, dict) and source.get("type") == "url":
        return {"type": "image_url", "image_url": {"url": source.get("url")}}
    raise refuse("this image source cannot be sent to an OpenAI-protocol model", "messages")


def tool_choice_to_anthropic(choice: Any, parallel: Any) -> dict[str, Any] | None:
    if choice is None and parallel is not False:
        return None
    if choice is None or choice == "auto":
        mapped: dict[str, Any] = {"type": "auto"}
    elif choice == "none":
        return {"type": "none"}
    elif choice == "required":
        mapped = {"type": "any"}
    elif isinstance(choice, dict) and isinstance((choice.get("function") or {}).get("name"), str):
        mapped = {"type": "tool", "name": choice["function"]["name"]}
    else:
        raise refuse("tool_choice must be auto, none, required or a named function", "tool_choice")
    if parallel is False:
        mapped["disable_parallel_tool_use"] = True
    return mapped


def tool_choice_to_openai(choice: Any) -> tuple[Any, bool | None]:
    """OpenAI's ``tool_choice`` and ``parallel_tool_calls`` for an Anthropic choice."""
    if choice is None:
        return None, None
    if not isinstance(choice, dict):
        raise refuse("tool_choice must be an object", "tool_choice")
    kind = choice.get("type")
    parallel = False if choice.get("disable_parallel_tool_use") else None
    if kind == "auto":
        return "auto", parallel
    if kind == "any":
        return "required", parallel
    if kind == "none":
        return "none", None
    if kind == "tool" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}, parallel
    raise refuse("tool_choice type must be auto, any, none or tool", "tool_choice")


def text_of(content: Any) -> str:
    """The text of a string or of a list of text parts/blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "") for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""
