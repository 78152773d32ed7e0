"""A Chat Completions client calling a model served over Anthropic's Messages API.

Request: system and developer messages become ``system`` blocks; runs of user and tool
messages merge into one user turn whose ``tool_result`` blocks come first; assistant
``tool_calls`` become ``tool_use`` blocks; tools, ``tool_choice``, ``stop``, images and
``user`` map directly; ``response_format`` asks for a JSON answer (``json_answer``).
Answer: text and ``tool_use`` blocks become the message's content and ``tool_calls`` (a
JSON answer given as a tool's input becomes the content); ``stop_reason`` maps to
``finish_reason``; usage is converted so that ``prompt_tokens`` includes the cache reads
and writes that Anthropic reports apart.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from domain.catalogue import Route
from domain.usage import TokenUsage
from edge.relay import usage as usage_of
from edge.relay.native.chat import wants_usage
from edge.relay.protocol import StreamingAdapter, StreamProcessor
from edge.relay.sse import Event, frame
from edge.relay.translate import json_answer
from edge.relay.translate.common import (
    STOP_TO_OPENAI,
    image_to_anthropic,
    refuse,
    text_of,
    tool_choice_to_anthropic,
    tool_id,
)
from edge.relay.wire import chat, messages

REFUSED_FIELDS = {
    "logprobs": "logprobs are not available for this model's provider",
    "top_logprobs": "logprobs are not available for this model's provider",
    "audio": "audio output is not available for this model's provider",
    "functions": "the deprecated 'functions' parameter is not supported here; use 'tools'",
    "function_call": "the deprecated 'function_call' parameter is not supported here; use 'tool_choice'",
}


def _user_blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise refuse("message content must be a string or an array of parts", "messages")
    blocks: list[dict[str, Any]] = []
    for part in content:
        if not isinstance(part, dict):
            raise refuse("content parts must be objects", "messages")
        kind = part.get("type")
        if kind == "text":
            block = {"type": "text", "text": str(part.get("text", ""))}
            if "cache_control" in part:
                block["cache_control"] = part["cache_control"]
            if block["text"]:
                blocks.append(block)
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            blocks.append(image_to_anthropic(str(url or "")))
        else:
            raise refuse(f"content parts of type {kind!r} are not supported for this model's provider", "messages")
    return blocks


def _assistant_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = [b for b in _user_blocks(message.get("content") or "") if b["type"] == "text"]
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise refuse("tool_calls need a function name", "messages")
        arguments = function.get("arguments") or "{}"
        try:
            parsed = orjson.loads(arguments) if isinstance(arguments, str) else arguments
        except orjson.JSONDecodeError:
            raise refuse("tool call arguments must be JSON", "messages") from None
        blocks.append({
            "type": "tool_use",
            "id": tool_id(call.get("id")),
            "name": function["name"],
            "input": parsed if isinstance(parsed, dict) else {"value": parsed},
        })
    return blocks


def _tool_result(message: dict[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    result: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_id(message.get("tool_call_id"))}
    if isinstance(content, str):
        result["content"] = content
    else:
        result["content"] = [{"type": "text", "text": text_of(content)}]
    return result


def translate_request(body: dict[str, Any], route: Route, stream: bool) -> dict[str, Any]:
    return _translate(body, route, stream)[0]


def _translate(body: dict[str, Any], route: Route, stream: bool) -> tuple[dict[str, Any], bool]:
    """The Messages request, and whether its JSON answer comes as ``JSON_TOOL``'s input."""
    for field, reason in REFUSED_FIELDS.items():
        if body.get(field) not in (None, False):
            raise refuse(reason, field)
    system: list[dict[str, Any]] = []
    turns: list[tuple[str, list[dict[str, Any]]]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if not blocks:
            return
        if turns and turns[-1][0] == role:
            merged = turns[-1][1] + blocks
            if role == "user":  # tool results must lead their user turn
                merged = [b for b in merged if b["type"] == "tool_result"] + [
                    b for b in merged if b["type"] != "tool_result"
                ]
            turns[-1] = (role, merged)
        else:
            turns.append((role, blocks))

    for message in body["messages"]:
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_user_blocks(message.get("content") or ""))
        elif role == "user":
            add("user", _user_blocks(message.get("content") or ""))
        elif role == "assistant":
            add("assistant", _assistant_blocks(message))
        elif role == "tool":
            add("user", [_tool_result(message)])
        else:
            raise refuse(f"messages with role {role!r} are not supported for this model's provider", "messages")
    if not turns or turns[0][0] != "user":
        turns.insert(0, ("user", [{"type": "text", "text": "(continue)"}]))
    sent: dict[str, Any] = {
        "model": route.upstream_model,
        "messages": [{"role": role, "content": blocks} for role, blocks in turns],
    }
    if system:
        sent["system"] = system
    if stream:
        sent["stream"] = True
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            sent[name] = min(body[name], 1) if name == "temperature" else body[name]
    stop = body.get("stop")
    if stop:
        sent["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    tools = body.get("tools")
    if tools:
        sent["tools"] = [_tool(tool) for tool in tools]
    choice = tool_choice_to_anthropic(body.get("tool_choice"), body.get("parallel_tool_calls"))
    if choice is not None and tools:
        sent["tool_choice"] = choice
    if isinstance(body.get("user"), str):
        sent["metadata"] = {"user_id": body["user"]}
    wanted = json_answer.from_response_format(body.get("response_format"))
    return sent, wanted is not None and json_answer.ask(sent, wanted, route)


def _tool(tool: Any) -> dict[str, Any]:
    function = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise refuse("only function tools are supported for this model's provider", "tools")
    mapped: dict[str, Any] = {
        "name": function["name"],
        "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
    }
    if function.get("description"):
        mapped["description"] = function["description"]
    return mapped


def translate_response(data: dict[str, Any], model: str, json_tool: bool = False) -> dict[str, Any]:
    """``json_tool``: a ``JSON_TOOL`` call is the answer's text."""
    text: list[str] = []
    reasoning: list[str] = []
    calls: list[dict[str, Any]] = []
    answered_in_json = False
    for block in data.get("content") or ():
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            text.append(block.get("text", ""))
        elif kind == "thinking":
            reasoning.append(block.get("thinking", ""))
        elif kind == "tool_use" and json_tool and block.get("name") == json_answer.JSON_TOOL:
            text.append(orjson.dumps(block.get("input") or {}).decode())
            answered_in_json = True
        elif kind == "tool_use":
            calls.append({
                "id": block.get("id"),
                "type": "function",
                "function": {"name": block.get("name"), "arguments": orjson.dumps(block.get("input") or {}).decode()},
            })
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text or not calls else None, "refusal": None}
    if calls:
        message["tool_calls"] = calls
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    reported = data.get("usage")
    finish = STOP_TO_OPENAI.get(str(data.get("stop_reason")), "stop")
    return {
        "id": f"chatcmpl-{str(data.get('id', '')).removeprefix('msg_')}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": "stop" if answered_in_json and not calls else finish,
        }],
        "usage": usage_of.to_openai(usage_of.from_anthropic(reported)) if isinstance(reported, dict) else None,
    }


class MessagesToChatStream(StreamProcessor):
    """Messages events in, Chat Completions chunks out."""

    def __init__(self, model: str, client_wants_usage: bool, json_tool: bool = False) -> None:
        super().__init__()
        self.model = model
        self.client_wants_usage = client_wants_usage
        self.json_tool = json_tool  # a JSON_TOOL call is the answer's text
        self._json_block: int | None = None  # the Anthropic block index of that call
        self.chunk_id = "chatcmpl-"
        self.created = int(time.time())
        self._prompt: dict[str, Any] = {}
        self._tool_index: dict[int, int] = {}  # Anthropic block index -> OpenAI tool call index

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        chunk: dict[str, Any] = {
            "id": self.chunk_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if self.client_wants_usage:
            chunk["usage"] = None
        return frame(orjson.dumps(chunk))

    def feed(self, event: Event) -> bytes:
        if event.name == "ping":
            return b""
        data = self.decode(event.data)
        if data is None:
            return b""
        kind = event.name or data.get("type")
        if kind == "message_start":
            message = data.get("message") or {}
            self.chunk_id = f"chatcmpl-{str(message.get('id', '')).removeprefix('msg_')}"
            self._prompt = {k: v for k, v in (message.get("usage") or {}).items() if k != "output_tokens"}
            if "input_tokens" in self._prompt:
                self.prompt_usage = usage_of.from_anthropic(self._prompt)
            return self._chunk({"role": "assistant", "content": ""})
        if kind == "content_block_start":
            block = data.get("content_block") or {}
            if block.get("type") == "tool_use" and self.json_tool and block.get("name") == json_answer.JSON_TOOL:
                self._json_block = int(data.get("index", 0))
                return b""
            if block.get("type") == "tool_use":
                index = len(self._tool_index)
                self._tool_index[int(data.get("index", 0))] = index
                self.delivered.add(str(block.get("name") or ""))
                return self._chunk({"tool_calls": [{
                    "index": index, "id": block.get("id"), "type": "function",
                    "function": {"name": block.get("name"), "arguments": ""},
                }]})
            return b""
        if kind == "content_block_delta":
            delta = data.get("delta") or {}
            if delta.get("type") == "text_delta":
                self.delivered.add(delta.get("text", ""))
                return self._chunk({"content": delta.get("text", "")})
            if delta.get("type") == "input_json_delta":
                self.delivered.add(delta.get("partial_json", ""))
                if self._json_block is not None and int(data.get("index", 0)) == self._json_block:
                    return self._chunk({"content": delta.get("partial_json", "")}) if delta.get("partial_json") else b""
                index = self._tool_index.get(int(data.get("index", 0)), 0)
                return self._chunk({"tool_calls": [{"index": index, "function": {"arguments": delta.get("partial_json", "")}}]})
            if delta.get("type") == "thinking_delta":
                self.delivered.add(delta.get("thinking", ""))
                return self._chunk({"reasoning_content": delta.get("thinking", "")})
            return b""
        if kind == "message_delta":
            reported = {**self._prompt, **(data.get("usage") or {})}
            if "output_tokens" in reported and "input_tokens" in reported:
                self.usage = usage_of.from_anthropic(reported)
            finish = STOP_TO_OPENAI.get(str((data.get("delta") or {}).get("stop_reason")), "stop")
            answered_in_json = self._json_block is not None and not self._tool_index
            return self._chunk({}, "stop" if answered_in_json else finish)
        if kind == "message_stop":
            self.finished = True
        elif kind == "error":
            self.reported_error(data.get("error"))
        return b""

    def closing(self) -> bytes:
        if not self.client_wants_usage or self.usage is None:
            return chat.DONE
        chunk = {
            "id": self.chunk_id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [], "usage": usage_of.to_openai(self.usage),
        }
        return frame(orjson.dumps(chunk)) + chat.DONE

    def error(self, message: str, kind: str) -> bytes:
        return chat.error_frame(message, kind)


class ChatToMessages(StreamingAdapter):
    """Chat Completions request to Messages; the answer back."""

    operation = "messages"

    json_tool = False  # set by ``request``: the JSON answer comes as JSON_TOOL's input

    def request(self, body: dict[str, Any], route: Route, stream: bool) -> dict[str, Any]:
        sent, self.json_tool = _translate(body, route, stream)
        return sent

    def encode(self, request: dict[str, Any], limit: int | None) -> bytes:
        request["max_tokens"] = limit
        return orjson.dumps(request)

    def response(self, raw: bytes, data: dict[str, Any], model: str) -> tuple[bytes, TokenUsage | None, str]:
        reported = data.get("usage")
        usage = usage_of.from_anthropic(reported) if isinstance(reported, dict) else None
        return orjson.dumps(translate_response(data, model, self.json_tool)), usage, messages.answer_text(data)

    def stream(self, body: dict[str, Any], model: str) -> StreamProcessor:
        return MessagesToChatStream(model, wants_usage(body), self.json_tool)
