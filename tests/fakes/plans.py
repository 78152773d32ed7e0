"""What a request asks of the fake upstream: the directives in its text, the usage it
will report (prompt tokens = words in the request's texts + 7; output tokens = the
answer's words, at most the request's output limit, where it stops with ``length``), and
whether it calls a tool. Shared by every protocol the fake speaks."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from typing import Any

LIMITS = ("max_tokens", "max_completion_tokens", "max_output_tokens")  # each protocol's output limit
DIRECTIVE = re.compile(r"!([a-z-]+)(?:=([A-Za-z0-9:._-]+))?")


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [t for item in value for t in _texts(item)]
    if isinstance(value, dict):
        if value.get("type") in ("image", "image_url"):
            return []
        return [t for key, item in value.items() if key in _TEXT_KEYS for t in _texts(item)]
    return []


_TEXT_KEYS = ("content", "text", "system", "messages", "input", "instructions", "output")


@dataclass
class Plan:
    """What one request asked the fake to do."""

    directives: dict[str, str]
    prompt_tokens: int
    words: list[str]

    def has(self, name: str) -> bool:
        return name in self.directives

    def number(self, name: str, default: float = 0) -> float:
        return float(self.directives.get(name, default))

    @property
    def tool_input(self) -> dict[str, Any]:
        encoded = self.directives.get("toolinput")
        if not encoded:
            return {"city": "Paris"}
        decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
        return decoded


def plan_for(body: dict[str, Any]) -> Plan:
    texts = _texts(body.get("messages")) + _texts(body.get("system")) + _texts(body.get("input")) + _texts(body.get("instructions"))
    joined = " ".join(texts)
    directives = {m.group(1): m.group(2) or "" for m in DIRECTIVE.finditer(joined)}
    count = int(directives.get("words", "5"))
    limit = next((body[name] for name in LIMITS if isinstance(body.get(name), int)), None)
    if limit is not None and count > limit:  # as a model does: stop at the output limit
        count = limit
        directives["length"] = ""
    words = [f"w{n}" for n in range(count)]
    plan = Plan(directives, len(joined.split()) + 7, words)
    output_config = body.get("output_config")
    if isinstance(output_config, dict) and output_config.get("format"):  # structured output: the answer is JSON
        plan.words = [json.dumps(plan.tool_input)]
    return plan


def answered(body: dict[str, Any]) -> bool:
    """The conversation ends with a tool's result: the model answers it in text."""
    messages = body.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[-1], dict):
        last = messages[-1]
        content = last.get("content")
        return last.get("role") == "tool" or (
            isinstance(content, list) and any(isinstance(b, dict) and b.get("type") == "tool_result" for b in content))
    items = body.get("input")
    return isinstance(items, list) and bool(items) and isinstance(items[-1], dict) and str(
        items[-1].get("type", "")).endswith("call_output")


def pieces(text: str, count: int = 3) -> list[str]:
    """``text`` in ``count`` pieces, as a stream would deliver it."""
    size = max(len(text) // count, 1)
    return [text[i:i + size] for i in range(0, len(text), size)]


def forced(body: dict[str, Any]) -> bool:
    """The request's tool choice forces a tool call (every protocol's spelling)."""
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        return choice.get("type") in ("any", "tool", "function", "custom")
    return choice == "required"


def calls_tool(body: dict[str, Any], plan: Plan) -> bool:
    return bool(body.get("tools")) and (plan.has("tool") or forced(body)) and not answered(body)
