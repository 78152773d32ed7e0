"""A Messages client calling a model served over OpenAI's Chat Completions API.

Request: ``system`` becomes the first message, and a system-role message among the
turns (as Claude Code sends) a system message in its place; each user turn's
``tool_result`` blocks become ``tool`` messages placed before its text and images;
assistant ``tool_use`` blocks become ``tool_calls``; tools, ``tool_choice``,
``stop_sequences``, ``metadata.user_id`` and structured output map directly; thinking,
effort and context management are dropped (OpenAI models reason within
``max_completion_tokens``). Answer: content and ``tool_calls`` become text and
``tool_use`` blocks; ``finish_reason`` maps to ``stop_reason``; usage is converted so
that ``input_tokens`` excludes the cached tokens OpenAI counts inside ``prompt_tokens``.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from domain.catalogue import Route
from domain.usage import TokenUsage
from edge.relay import usage as usage_of
from edge.relay.protocol import StreamingAdapter, StreamProcessor
from edge.relay.sse import Event
from edge.relay.translate.common import (
    STOP_TO_ANTHROPIC,
    image_to_openai,
    refuse,
    text_of,
    tool_choice_to_openai,
    tool_id,
)
from edge.relay.wire import chat, messages

MAX_STOP_SEQUENCES = 4  # OpenAI's limit


def _system(system: Any) -> str:
    if isinstance(system, str):
        return system
    if isinstance(system, list):
        return "\n\n".join(text_of([b]) for b in system if isinstance(b, dict) and b.get("type") == "text")
    raise refuse("system must be a string or an array of text blocks", "system")


def _user(content: Any) -> list[dict[str, Any]]:
    """The OpenAI messages for one Anthropic user turn: tool results first, then the rest."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    if not isinstance(content, list):
        raise refuse("message content must be a string or an array of blocks", "messages")
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "tool_result":
            text = text_of(block.get("content"))
            if block.get("is_error"):
                text = f"Error: {text}"
            results.append({"role": "tool", "tool_call_id": str(block.get("tool_use_id", "")), "content": text})
        elif kind == "text":
            parts.append({"type": "text", "text": str(block.get("text", ""))})
        elif kind == "image":
            parts.append(image_to_openai(block.get("source")))
        else:
            raise refuse(f"content blocks of type {kind!r} are not supported for this model's provider", "messages")
    if parts:
        only_text = all(p["type"] == "text" for p in parts)
        results.append({"role": "user", "content": "".join(p["text"] for p in parts) if only_text else parts})
    return results


def _assistant(content: Any) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in content if isinstance(content, list) else ():
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            text.append(str(block.get("text", "")))
        elif kind == "tool_use":
            calls.append({
                "id": str(block.get("id", "")),
                "type": "function",
                "function": {"name": block.get("name"), "arguments": orjson.dumps(block.get("input") or {}).decode()},
            })
        elif kind in ("thinking", "redacted_thinking"):
            continue  # an OpenAI model cannot take another model's reasoning back
        else:
            raise refuse(f"content blocks of type {kind!r} are not supported for this model's provider", "messages")
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text else None}
    if calls:
        message["tool_calls"] = calls
    return message


def _tool(tool: Any) -> dict[str, Any]:
    if not isinstance(tool, dict) or not isinstance(tool.get("name"), str) or tool.get("type") not in (None, "custom"):
        raise refuse("only custom tools (name, input_schema) are supported for this model's provider", "tools")
    function: dict[str, Any] = {"name": tool["name"], "parameters": tool.get("input_schema") or {"type": "object"}}
    if tool.get("description"):
        function["description"] = tool["description"]
    return {"type": "function", "function": function}


def translate_request(body: dict[str, Any], route: Route, stream: bool) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    if body.get("system"):
        messages.append({"role": "system", "content": _system(body["system"])})
    for message in body["messages"]:
        role = message.get("role")
        if role == "user":
            messages.extend(_user(message.get("content")))
        elif role == "system":  # a system message among the turns stays where it was
            messages.append({"role": "system", "content": _system(message.get("content"))})
        else:
            messages.append(_assistant(message.get("content")))
    sent: dict[str, Any] = {
        "model": route.upstream_model,
        "messages": messages,
    }
    if stream:
        sent["stream"] = True
        sent["stream_options"] = {"include_usage": True}
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            sent[name] = body[name]
    stops = body.get("stop_sequences")
    if stops:
        if len(stops) > MAX_STOP_SEQUENCES:
            raise refuse(f"at most {MAX_STOP_SEQUENCES} stop_sequences for this model's provider", "stop_sequences")
        sent["stop"] = list(stops)
    if body.get("tools"):
        sent["tools"] = [_tool(tool) for tool in body["tools"]]
        choice, parallel = tool_choice_to_openai(body.get("tool_choice"))
        if choice is not None:
            sent["tool_choice"] = choice
        if parallel is not None:
            sent["parallel_tool_calls"] = parallel
    user = (body.get("metadata") or {}).get("user_id") if isinstance(body.get("metadata"), dict) else None
    if isinstance(user, str):
        sent["user"] = user
    output_format = _output_format(body.get("output_config"))
    if output_format is not None:
        sent["response_format"] = output_format
    return sent


def _output_format(config: Any) -> dict[str, Any] | None:
    """Anthropic's structured output (``output_config.format``) as OpenAI's
    ``response_format``. The rest of ``output_config`` (effort), ``thinking`` and
    ``context_management`` have no Chat Completions equivalent that every OpenAI model
    takes (a model that does not reason refuses ``reasoning_effort``): they are dropped."""
    if not isinstance(config, dict) or not isinstance(config.get("format"), dict):
        return None
    schema = config["format"].get("schema")
    if config["format"].get("type") != "json_schema" or not isinstance(schema, dict):
        raise refuse("output_config.format must be a json_schema format with a schema", "output_config")
    return {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}


def _message_id(openai_id: Any) -> str:
    suffix = str(openai_id or "").removeprefix("chatcmpl-") or uuid.uuid4().hex
    return f"msg_{suffix}"


def translate_response(data: dict[str, Any], model: str) -> dict[str, Any]:
    choice = (data.get("choices") or [{}])[0]
    message: dict[str, Any] = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if isinstance(message.get("content"), str) and message["content"]:
        content.append({"type": "text", "text": message["content"]})
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        try:
            arguments = orjson.loads(function.get("arguments") or "{}")
        except orjson.JSONDecodeError:
            arguments = {"arguments": function.get("arguments")}
        content.append({
            "type": "tool_use",
            "id": tool_id(call.get("id")),
            "name": function.get("name"),
            "input": arguments if isinstance(arguments, dict) else {"value": arguments},
        })
    reported = data.get("usage")
    usage = usage_of.from_openai(reported) if isinstance(reported, dict) else TokenUsage()
    return {
        "id": _message_id(data.get("id")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": STOP_TO_ANTHROPIC.get(str(choice.get("finish_reason")), "end_turn"),
        "stop_sequence": None,
        "usage": usage_of.to_anthropic(usage),
    }


class ChatToMessagesStream(StreamProcessor):
    """Chat Completions chunks in, Messages events out, block indexes numbered as blocks open."""

    def __init__(self, model: str) -> None:
        super().__init__()
        self.model = model
        self._started = False
        self._open: tuple[str, int] | None = None  # ("text" | "tool", block index)
        self._next_block = 0
        self._tool_blocks: dict[int, int] = {}  # OpenAI tool call index -> block index
        self._stop_reason = "end_turn"

    def _event(self, name: str, data: dict[str, Any]) -> bytes:
        return messages.event(name, data)

    def _close_block(self) -> bytes:
        if self._open is None:
            return b""
        index = self._open[1]
        self._open = None
        return self._event("content_block_stop", {"index": index})

    def _start(self, chunk: dict[str, Any]) -> bytes:
        self._started = True
        message: dict[str, Any] = {
            "id": _message_id(chunk.get("id")), "type": "message", "role": "assistant", "content": [],
            "model": self.model, "stop_reason": None, "stop_sequence": None,
            "usage": usage_of.to_anthropic(TokenUsage()),
        }
        return self._event("message_start", {"message": message})

    def feed(self, event: Event) -> bytes:
        if event.data == "[DONE]":
            self.finished = True
            return b""
        chunk = self.decode(event.data)
        if chunk is None:
            return b""
        if chunk.get("error"):
            self.reported_error(chunk.get("error"))
            return b""
        out: list[bytes] = []
        if not self._started:
            out.append(self._start(chunk))
        if isinstance(chunk.get("usage"), dict):
            self.usage = usage_of.from_openai(chunk["usage"])
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                if self._open is None or self._open[0] != "text":
                    out.append(self._close_block())
                    out.append(self._begin("text", {"type": "text", "text": ""}))
                self.delivered.add(text)
                out.append(self._event("content_block_delta", {
                    "index": self._open[1], "delta": {"type": "text_delta", "text": text},  # type: ignore[index]
                }))
            for call in delta.get("tool_calls") or ():
                out.append(self._tool_delta(call))
            if choice.get("finish_reason"):
                out.append(self._close_block())
                self._stop_reason = STOP_TO_ANTHROPIC.get(str(choice["finish_reason"]), "end_turn")
        return b"".join(out)

    def _begin(self, kind: str, block: dict[str, Any]) -> bytes:
        index = self._next_block
        self._next_block += 1
        self._open = (kind, index)
        return self._event("content_block_start", {"index": index, "content_block": block})

    def _tool_delta(self, call: Any) -> bytes:
        if not isinstance(call, dict):
            return b""
        out: list[bytes] = []
        position = int(call.get("index") or 0)
        function = call.get("function") or {}
        if call.get("id") or position not in self._tool_blocks:
            out.append(self._close_block())
            name = str(function.get("name") or "")
            self.delivered.add(name)
            out.append(self._begin("tool", {
                "type": "tool_use", "id": tool_id(call.get("id") or f"call_{position}"), "name": name, "input": {},
            }))
            self._tool_blocks[position] = self._open[1]  # type: ignore[index]
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            self.delivered.add(arguments)
            out.append(self._event("content_block_delta", {
                "index": self._tool_blocks[position], "delta": {"type": "input_json_delta", "partial_json": arguments},
            }))
        return b"".join(out)

    def closing(self) -> bytes:
        usage = usage_of.to_anthropic(self.usage or TokenUsage())
        delta = self._event("message_delta", {"delta": {"stop_reason": self._stop_reason, "stop_sequence": None}, "usage": usage})
        return self._close_block() + delta + messages.MESSAGE_STOP

    def error(self, message: str, kind: str) -> bytes:
        return messages.error_frame(message, kind)


class MessagesToChat(StreamingAdapter):
    """Messages request to Chat Completions; the answer back."""

    operation = "chat"

    def request(self, body: dict[str, Any], route: Route, stream: bool) -> dict[str, Any]:
        return translate_request(body, route, stream)

    def encode(self, request: dict[str, Any], limit: int | None) -> bytes:
        request["max_completion_tokens"] = limit
        return orjson.dumps(request)

    def response(self, raw: bytes, data: dict[str, Any], model: str) -> tuple[bytes, TokenUsage | None, str]:
        reported = data.get("usage")
        usage = usage_of.from_openai(reported) if isinstance(reported, dict) else None
        return orjson.dumps(translate_response(data, model)), usage, chat.answer_text(data)

    def stream(self, body: dict[str, Any], model: str) -> StreamProcessor:
        return ChatToMessagesStream(model)
