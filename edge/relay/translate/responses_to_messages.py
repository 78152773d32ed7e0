"""A Responses client calling a model served over Anthropic's Messages API: the request.

``instructions`` and system or developer messages become ``system`` blocks. User and
assistant messages, ``function_call`` and ``custom_tool_call`` items (as ``tool_use``),
their outputs (as ``tool_result``) and the reasoning items a Claude model produced (as
``thinking``) become alternating turns: consecutive items of one role merge into one
turn, tool results first. Function tools map to tools; a free-form custom tool becomes
a tool with one string input, ``input`` (its grammar, if any, in the description); the
tools of a ``namespace`` are flattened to ``namespace__name``. Hosted web search is left
out, so the model answers without it (Anthropic's own search is live, billed per
search, and TokenSea meters tokens only); any other hosted tool is a 400 that names it.
``tool_choice`` and ``parallel_tool_calls`` map directly; ``reasoning.effort`` becomes a
thinking budget; ``text.format`` asks for a JSON answer (``json_answer``).

TokenSea keeps no conversation state: ``previous_response_id``, ``conversation`` and
stored ``prompt`` templates are refused here ("send the whole input, store: false").
The answer's way back is ``messages_to_responses``.
"""

from __future__ import annotations

from typing import Any

import orjson

from domain.catalogue import Route
from domain.usage import TokenUsage
from edge.relay import usage as usage_of
from edge.relay.protocol import StreamingAdapter, StreamProcessor
from edge.relay.translate import json_answer
from edge.relay.translate.common import image_to_anthropic, refuse, tool_id
from edge.relay.translate.messages_to_responses import (
    MessagesToResponsesStream,
    ToolNames,
    translate_response,
    unseal,
)
from edge.relay.wire import messages

STATEFUL = {
    "previous_response_id": "TokenSea keeps no conversation state for this model's provider: "
                            "send the whole conversation in 'input' (with store: false) instead of previous_response_id",
    "conversation": "TokenSea keeps no conversation state for this model's provider: send the whole conversation in 'input'",
    "prompt": "stored prompt templates are not available for this model's provider: send the prompt in 'input'",
}
WEB_SEARCH = frozenset({"web_search", "web_search_preview", "web_search_2025_08_26", "web_search_preview_2025_03_11"})
# Thinking budgets for reasoning.effort (Anthropic's minimum is 1,024; it must stay below max_tokens).
THINKING_BUDGET = {"low": 2048, "medium": 8192, "high": 16384, "xhigh": 32768}
MIN_THINKING = 1024


def tool_names(body: dict[str, Any]) -> ToolNames:
    names = ToolNames()
    for tool in _listed(body.get("tools")):
        if tool.get("type") == "custom":
            names.custom.add(str(tool.get("name")))
        elif tool.get("type") == "namespace":
            for inner in _listed(tool.get("tools")):
                flat = ToolNames.flat(str(inner.get("name")), tool.get("name"))
                names.namespaced[flat] = (str(tool.get("name")), str(inner.get("name")))
                if inner.get("type") == "custom":
                    names.custom.add(flat)
    return names


def _listed(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


# -- tools ---------------------------------------------------------------------------------

def _tool(tool: dict[str, Any], namespace: str | None = None) -> list[dict[str, Any]]:
    kind = tool.get("type")
    name = tool.get("name")
    if kind in WEB_SEARCH and namespace is None:
        return []
    if kind == "namespace" and namespace is None and isinstance(name, str):
        return [mapped for inner in _listed(tool.get("tools")) for mapped in _tool(inner, name)]
    if kind not in ("function", "custom") or not isinstance(name, str) or not name:
        label = name if isinstance(name, str) and name else kind
        raise refuse(f"the tool {label!r} (type {kind!r}) is not available for this model's provider", "tools")
    description: str = tool["description"] if isinstance(tool.get("description"), str) else ""
    if kind == "function":
        schema = tool.get("parameters") if isinstance(tool.get("parameters"), dict) else None
        return [_described(ToolNames.flat(name, namespace), description,
                           schema or {"type": "object", "properties": {}})]
    grammar: dict[str, Any] = tool["format"] if isinstance(tool.get("format"), dict) else {}
    if grammar.get("type") == "grammar":
        description += (f"\n\nThe input must follow this {grammar.get('syntax', '')} grammar:\n"
                        f"{grammar.get('definition', '')}").rstrip()
    schema = {"type": "object", "properties": {"input": {"type": "string", "description": "The tool's free-form input."}},
              "required": ["input"]}
    return [_described(ToolNames.flat(name, namespace), description, schema)]


def _described(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    mapped: dict[str, Any] = {"name": name, "input_schema": schema}
    if description:
        mapped["description"] = description
    return mapped


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    if choice is None and parallel is not False:
        return None
    if choice is None or choice == "auto":
        mapped: dict[str, Any] = {"type": "auto"}
    elif choice == "none":
        return {"type": "none"}
    elif choice == "required":
        mapped = {"type": "any"}
    elif isinstance(choice, dict) and choice.get("type") in ("function", "custom") and isinstance(choice.get("name"), str):
        mapped = {"type": "tool", "name": ToolNames.flat(choice["name"], choice.get("namespace"))}
    else:
        kind = choice.get("type") if isinstance(choice, dict) else choice
        raise refuse(f"tool_choice {kind!r} is not available for this model's provider", "tool_choice")
    if parallel is False:
        mapped["disable_parallel_tool_use"] = True
    return mapped


# -- input ---------------------------------------------------------------------------------

def _parts(content: Any, where: str) -> list[dict[str, Any]]:
    """Content blocks for a message's content (a string or input/output parts)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise refuse(f"{where}: content must be a string or an array of parts", "input")
    blocks: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text", "summary_text", "reasoning_text"):
            if part.get("text"):
                blocks.append({"type": "text", "text": str(part["text"])})
        elif kind == "refusal":
            blocks.append({"type": "text", "text": str(part.get("refusal", ""))})
        elif kind == "input_image":
            url = part.get("image_url")
            if not isinstance(url, str):
                raise refuse(f"{where}: images must be sent as image_url (a file_id needs OpenAI's file store)", "input")
            blocks.append(image_to_anthropic(url))
        elif kind == "input_file":
            blocks.append(_document(part, where))
        else:
            raise refuse(f"{where}: content parts of type {kind!r} are not available for this model's provider", "input")
    return blocks


def _document(part: dict[str, Any], where: str) -> dict[str, Any]:
    data, url = part.get("file_data"), part.get("file_url")
    if isinstance(data, str) and data.startswith("data:") and ";base64," in data:
        media, _, payload = data[5:].partition(";base64,")
        return {"type": "document", "source": {"type": "base64", "media_type": media, "data": payload}}
    if isinstance(url, str) and url.startswith(("http://", "https://")):
        return {"type": "document", "source": {"type": "url", "url": url}}
    raise refuse(f"{where}: files must be sent as a base64 data URL or an http(s) URL", "input")


def _arguments(value: Any, where: str) -> dict[str, Any]:
    try:
        parsed = orjson.loads(value) if isinstance(value, str) else value
    except orjson.JSONDecodeError:
        raise refuse(f"{where}: the function call's arguments must be JSON", "input") from None
    return parsed if isinstance(parsed, dict) else {"value": parsed}


def _output(value: Any, where: str) -> Any:
    """A tool call's output as a ``tool_result``'s content."""
    if isinstance(value, str):
        return value
    return _parts(value, where) if isinstance(value, list) else str(value or "")


class _Turns:
    """Alternating turns, runs of one role merged, tool results leading a user turn."""

    def __init__(self) -> None:
        self.turns: list[tuple[str, list[dict[str, Any]]]] = []

    def add(self, role: str, blocks: list[dict[str, Any]]) -> None:
        if not blocks:
            return
        if self.turns and self.turns[-1][0] == role:
            merged = self.turns[-1][1] + blocks
            if role == "user":
                merged = [b for b in merged if b["type"] == "tool_result"] + [b for b in merged if b["type"] != "tool_result"]
            self.turns[-1] = (role, merged)
        else:
            self.turns.append((role, blocks))

    def messages(self) -> list[dict[str, Any]]:
        if not self.turns or self.turns[0][0] != "user":
            self.turns.insert(0, ("user", [{"type": "text", "text": "(continue)"}]))
        return [{"role": role, "content": blocks} for role, blocks in self.turns]


def _conversation(body: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The ``system`` blocks and the turns for the request's instructions and input."""
    system: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        system.append({"type": "text", "text": instructions})
    elif instructions is not None and not isinstance(instructions, str):
        raise refuse("instructions must be a string for this model's provider", "instructions")
    turns = _Turns()
    items = body.get("input")
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    for number, item in enumerate(items or ()):
        where = f"input[{number}]"
        if not isinstance(item, dict):
            raise refuse(f"{where} must be an object", "input")
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role in ("system", "developer"):
                system.extend(b for b in _parts(item.get("content"), where) if b["type"] == "text")
            elif role in ("user", "assistant"):
                turns.add(str(role), _parts(item.get("content"), where))
            else:
                raise refuse(f"{where}: messages with role {role!r} are not available", "input")
        elif kind in ("function_call", "custom_tool_call"):
            name = ToolNames.flat(str(item.get("name") or ""), item.get("namespace"))
            arguments = (_arguments(item.get("arguments") or "{}", where) if kind == "function_call"
                         else {"input": str(item.get("input") or "")})
            turns.add("assistant", [{"type": "tool_use", "id": tool_id(item.get("call_id")), "name": name, "input": arguments}])
        elif kind in ("function_call_output", "custom_tool_call_output"):
            turns.add("user", [{"type": "tool_result", "tool_use_id": tool_id(item.get("call_id")),
                                "content": _output(item.get("output"), where)}])
        elif kind == "reasoning":
            block = unseal(item.get("encrypted_content"))
            if block is not None:
                turns.add("assistant", [block])
        elif kind in ("web_search_call",):
            continue  # a search another model ran: its findings are in the text that followed
        else:
            raise refuse(f"{where}: items of type {kind!r} are not available for this model's provider", "input")
    return system, turns.messages()


# -- the request ---------------------------------------------------------------------------

def _may_think(turns: list[dict[str, Any]]) -> bool:
    """Anthropic takes thinking in a tool loop only if the assistant turn that called the
    tools began with its thinking: a loop begun without it (another model's, or effort
    raised midway) goes on without."""
    last = next((turn for turn in reversed(turns) if turn["role"] == "assistant"), None)
    if last is None or not any(block["type"] == "tool_use" for block in last["content"]):
        return True
    return last["content"][0]["type"] in ("thinking", "redacted_thinking")


def translate_request(body: dict[str, Any], route: Route, stream: bool) -> tuple[dict[str, Any], ToolNames]:
    """The Messages request (all but ``max_tokens``), and how its tools are named."""
    for name, reason in STATEFUL.items():
        if body.get(name) not in (None, ""):
            raise refuse(reason, name)
    system, turns = _conversation(body)
    sent: dict[str, Any] = {"model": route.upstream_model, "messages": turns}
    if system:
        sent["system"] = system
    if stream:
        sent["stream"] = True
    tools = [mapped for tool in _listed(body.get("tools")) for mapped in _tool(tool)]
    if tools:
        sent["tools"] = tools
        choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
        if choice is not None:
            sent["tool_choice"] = choice
    names = tool_names(body)
    wanted = json_answer.from_text_format(body.get("text"))
    names.json_tool = wanted is not None and json_answer.ask(sent, wanted, route)
    forced = (sent.get("tool_choice") or {}).get("type") in ("any", "tool")
    budget = THINKING_BUDGET.get(str((body.get("reasoning") or {}).get("effort"))) if isinstance(body.get("reasoning"), dict) else None
    if budget is not None and not forced and _may_think(turns):  # Anthropic refuses thinking with a forced tool
        sent["thinking"] = {"type": "enabled", "budget_tokens": budget}
    else:
        for setting in ("temperature", "top_p"):  # thinking takes neither
            if isinstance(body.get(setting), int | float) and not isinstance(body.get(setting), bool):
                sent[setting] = min(body[setting], 1) if setting == "temperature" else body[setting]
    user = body.get("safety_identifier") or body.get("user")
    if isinstance(user, str) and user:
        sent["metadata"] = {"user_id": user}
    return sent, names


class ResponsesToMessages(StreamingAdapter):
    """Responses request to Messages; the answer (whole or streamed) back."""

    operation = "messages"

    def __init__(self) -> None:
        self.names = ToolNames()
        self.echo: dict[str, Any] = {}  # the request, as the response echoes it

    def request(self, body: dict[str, Any], route: Route, stream: bool) -> dict[str, Any]:
        sent, self.names = translate_request(body, route, stream)
        self.echo = body
        return sent

    def encode(self, request: dict[str, Any], limit: int | None) -> bytes:
        self.echo = {**self.echo, "max_output_tokens": limit}
        request["max_tokens"] = limit
        thinking = request.get("thinking")
        if thinking is not None and limit is not None:
            budget = min(thinking["budget_tokens"], limit - 1)
            if budget < MIN_THINKING:
                del request["thinking"]  # too small a limit to think within
            else:
                thinking["budget_tokens"] = budget
        return orjson.dumps(request)

    def response(self, raw: bytes, data: dict[str, Any], model: str) -> tuple[bytes, TokenUsage | None, str]:
        reported = data.get("usage")
        usage = usage_of.from_anthropic(reported) if isinstance(reported, dict) else None
        return orjson.dumps(translate_response(data, model, self.names, self.echo)), usage, messages.answer_text(data)

    def stream(self, body: dict[str, Any], model: str) -> StreamProcessor:
        return MessagesToResponsesStream(model, self.echo, self.names)
