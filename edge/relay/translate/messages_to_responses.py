"""A Responses client calling a model served over Anthropic's Messages API: the answer.

Text blocks become message items; ``tool_use`` blocks become ``function_call`` items
(their namespace restored) or, for free-form tools, ``custom_tool_call`` items whose
input is the tool's one string; thinking blocks become reasoning items whose
``encrypted_content`` carries the signature back, so the next turn can hand the thinking
to the model again (``responses_to_messages``); a JSON answer given as ``JSON_TOOL``'s
input becomes a message's text. (The thinking's text travels inside ``encrypted_content``
too: Codex sends a reasoning item back without its ``reasoning_text`` content, and
Anthropic checks the signature against the text.) A ``max_tokens`` stop makes the response
``incomplete`` (reason ``max_output_tokens``), a refusal ``incomplete``
(``content_filter``). Usage is written in the Responses convention: ``input_tokens``
includes the cache reads and writes Anthropic reports apart, each counted once.

Streamed, each Anthropic event becomes the Responses events it implies, at once:
``message_start`` → ``response.created`` and ``response.in_progress``; a block's start →
``response.output_item.added`` (and ``response.content_part.added``); its deltas →
``response.output_text.delta``, ``response.function_call_arguments.delta`` or
``response.reasoning_text.delta``; its stop → the ``.done`` events and
``response.output_item.done``. ``response.completed`` is the terminator. The protocol
repeats each item whole in its done event and in the final response, so this stream
keeps the answer's items until the end: its memory grows with the answer.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from domain.usage import TokenUsage
from edge.relay import usage as usage_of
from edge.relay.protocol import StreamProcessor
from edge.relay.sse import Event
from edge.relay.translate.json_answer import JSON_TOOL
from edge.relay.wire import responses

# Reasoning items a Claude model produced carry its thinking back in encrypted_content.
SIGNED, REDACTED = "anthropic.thinking:", "anthropic.redacted:"


def seal(thinking: str, signature: str) -> str:
    """A thinking block as a reasoning item's ``encrypted_content``."""
    packed = orjson.dumps({"thinking": thinking, "signature": signature})
    return SIGNED + base64.urlsafe_b64encode(packed).decode()


def unseal(sealed: Any) -> dict[str, Any] | None:
    """The thinking block a reasoning item's ``encrypted_content`` carries, if a Claude
    model produced it (another model's reasoning cannot be handed to this one)."""
    if isinstance(sealed, str) and sealed.startswith(REDACTED):
        return {"type": "redacted_thinking", "data": sealed.removeprefix(REDACTED)}
    if not isinstance(sealed, str) or not sealed.startswith(SIGNED):
        return None
    try:
        packed = orjson.loads(base64.urlsafe_b64decode(sealed.removeprefix(SIGNED)))
    except (ValueError, orjson.JSONDecodeError):
        return None
    if not isinstance(packed, dict) or not all(isinstance(packed.get(k), str) for k in ("thinking", "signature")):
        return None
    return {"type": "thinking", "thinking": packed["thinking"], "signature": packed["signature"]}
NAMESPACE_SEPARATOR = "__"
INCOMPLETE = {"max_tokens": "max_output_tokens", "model_context_window_exceeded": "max_output_tokens",
              "refusal": "content_filter"}


@dataclass
class ToolNames:
    """How the client's tools are named for the provider, and how to name them back."""

    custom: set[str] = field(default_factory=set)  # free-form tools: their input is {"input": str}
    namespaced: dict[str, tuple[str, str]] = field(default_factory=dict)  # provider name -> (namespace, name)
    json_tool: bool = False  # the JSON answer comes as JSON_TOOL's input

    @staticmethod
    def flat(name: str, namespace: Any = None) -> str:
        return f"{namespace}{NAMESPACE_SEPARATOR}{name}" if isinstance(namespace, str) and namespace else name

    def call_item(self, item_id: str, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
        """The output item for a call of the provider-side tool ``name`` (``arguments``: its input, JSON)."""
        namespace, plain = self.namespaced.get(name, (None, name))
        if name in self.custom:
            try:
                decoded = orjson.loads(arguments or "{}")
            except orjson.JSONDecodeError:
                decoded = {}
            value = decoded.get("input") if isinstance(decoded, dict) else None
            item: dict[str, Any] = {"id": item_id, "type": "custom_tool_call", "status": status, "call_id": call_id,
                                    "name": plain, "input": value if isinstance(value, str) else arguments}
        else:
            item = {"id": item_id, "type": "function_call", "status": status, "call_id": call_id, "name": plain,
                    "arguments": arguments}
        if namespace is not None:
            item["namespace"] = namespace
        return item


def message_item(item_id: str, text: str | None, status: str) -> dict[str, Any]:
    content = [] if text is None else [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
    return {"id": item_id, "type": "message", "role": "assistant", "status": status, "content": content}


def reasoning_item(item_id: str, text: str | None, sealed: str | None, status: str) -> dict[str, Any]:
    item: dict[str, Any] = {"id": item_id, "type": "reasoning", "status": status, "summary": [],
                            "content": [] if text is None else [{"type": "reasoning_text", "text": text}]}
    if sealed is not None:
        item["encrypted_content"] = sealed
    return item


def _ending(stop_reason: Any) -> tuple[str, dict[str, Any] | None]:
    reason = INCOMPLETE.get(str(stop_reason))
    return ("incomplete", {"reason": reason}) if reason else ("completed", None)


def translate_response(data: dict[str, Any], model: str, names: ToolNames, request: dict[str, Any]) -> dict[str, Any]:
    suffix = str(data.get("id") or "").removeprefix("msg_") or f"{time.time_ns():x}"
    output: list[dict[str, Any]] = []
    for number, block in enumerate(data.get("content") or ()):
        kind = block.get("type") if isinstance(block, dict) else None
        item_id = f"{suffix}_{number}"
        if kind == "text":
            output.append(message_item(f"msg_{item_id}", str(block.get("text", "")), "completed"))
        elif kind == "tool_use" and names.json_tool and block.get("name") == JSON_TOOL:
            output.append(message_item(f"msg_{item_id}", orjson.dumps(block.get("input") or {}).decode(), "completed"))
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            output.append(names.call_item(f"fc_{item_id}", str(block.get("id")), str(block.get("name")), arguments,
                                          "completed"))
        elif kind == "thinking":
            thought = str(block.get("thinking", ""))
            output.append(reasoning_item(f"rs_{item_id}", thought, seal(thought, str(block.get("signature", ""))),
                                         "completed"))
        elif kind == "redacted_thinking":
            output.append(reasoning_item(f"rs_{item_id}", None, REDACTED + str(block.get("data", "")), "completed"))
    status, incomplete = _ending(data.get("stop_reason"))
    reported = data.get("usage")
    usage = usage_of.from_anthropic(reported) if isinstance(reported, dict) else TokenUsage()
    return {
        **responses.skeleton(f"resp_{suffix}", model, request),
        "status": status,
        "incomplete_details": incomplete,
        "output": output,
        "usage": usage_of.to_responses(usage),
    }


@dataclass
class _Item:
    """An output item being streamed: what it is, where, and its text so far."""

    kind: str  # "text", "json", "function", "thinking"
    item: dict[str, Any]
    index: int
    pieces: list[str] = field(default_factory=list)
    signature: str = ""


class MessagesToResponsesStream(StreamProcessor):
    """Messages events in, Responses events out."""

    def __init__(self, model: str, request: dict[str, Any], names: ToolNames) -> None:
        super().__init__()
        self.names = names
        self.events = responses.Events()
        self.response = responses.skeleton(f"resp_{time.time_ns():x}", model, request)
        self._started = False
        self._prompt: dict[str, Any] = {}
        self._open: dict[int, _Item] = {}  # Anthropic block index -> the item it builds
        self._done: dict[int, dict[str, Any]] = {}  # output index -> finished item
        self._next = 0  # the next output index
        self._suffix = ""
        self._stop_reason: Any = None

    def feed(self, event: Event) -> bytes:
        if event.name == "ping":
            return responses.PING
        data = self.decode(event.data)
        if data is None:
            return b""
        kind = event.name or data.get("type")
        out = [] if self._started or kind in ("error", "message_start") else [self._start({})]
        if kind == "message_start":
            out.append(self._start(data.get("message") or {}))
        elif kind == "content_block_start":
            out.append(self._begin(int(data.get("index", 0)), data.get("content_block") or {}))
        elif kind == "content_block_delta":
            out.append(self._delta(int(data.get("index", 0)), data.get("delta") or {}))
        elif kind == "content_block_stop":
            out.append(self._finish(int(data.get("index", 0))))
        elif kind == "message_delta":
            reported = {**self._prompt, **(data.get("usage") or {})}
            if "output_tokens" in reported and "input_tokens" in reported:
                self.usage = usage_of.from_anthropic(reported)
            self._stop_reason = (data.get("delta") or {}).get("stop_reason")
        elif kind == "message_stop":
            self.finished = True
        elif kind == "error":
            self.reported_error(data.get("error"))
        return b"".join(out)

    def _start(self, message: dict[str, Any]) -> bytes:
        if self._started:
            return b""
        self._started = True
        self._suffix = str(message.get("id") or "").removeprefix("msg_") or f"{time.time_ns():x}"
        self.response["id"] = f"resp_{self._suffix}"
        self._prompt = {k: v for k, v in (message.get("usage") or {}).items() if k != "output_tokens"}
        if "input_tokens" in self._prompt:
            self.prompt_usage = usage_of.from_anthropic(self._prompt)
        return (self.events("response.created", response=self.response)
                + self.events("response.in_progress", response=self.response))

    def _begin(self, block_index: int, block: dict[str, Any]) -> bytes:
        kind = block.get("type")
        index = self._next
        item_id = f"{self._suffix}_{index}"
        if kind == "redacted_thinking":
            self._next += 1
            item = reasoning_item(f"rs_{item_id}", None, REDACTED + str(block.get("data", "")), "completed")
            self._done[index] = item
            return (self.events("response.output_item.added", output_index=index, item=item)
                    + self.events("response.output_item.done", output_index=index, item=item))
        if kind == "text" or (kind == "tool_use" and self.names.json_tool and block.get("name") == JSON_TOOL):
            opened = _Item("text" if kind == "text" else "json", message_item(f"msg_{item_id}", None, "in_progress"), index)
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        elif kind == "tool_use":
            name = str(block.get("name") or "")
            self.delivered.add(name)
            item = self.names.call_item(f"fc_{item_id}", str(block.get("id") or f"call_{index}"), name, "", "in_progress")
            opened = _Item("function", item, index)
            if block.get("input"):  # a provider that sends the input whole, not in deltas
                opened.pieces.append(orjson.dumps(block["input"]).decode())
            part = None
        elif kind == "thinking":
            opened = _Item("thinking", reasoning_item(f"rs_{item_id}", None, None, "in_progress"), index)
            part = {"type": "reasoning_text", "text": ""}
        else:
            return b""  # a server tool's block: TokenSea sends none
        self._next += 1
        self._open[block_index] = opened
        out = self.events("response.output_item.added", output_index=index, item=opened.item)
        if part is not None:
            out += self.events("response.content_part.added", item_id=opened.item["id"], output_index=index,
                               content_index=0, part=part)
        return out

    def _delta(self, block_index: int, delta: dict[str, Any]) -> bytes:
        opened = self._open.get(block_index)
        kind = delta.get("type")
        if opened is None:
            return b""
        if kind == "signature_delta":
            opened.signature += str(delta.get("signature", ""))
            return b""
        text = delta.get({"text_delta": "text", "input_json_delta": "partial_json", "thinking_delta": "thinking"}.get(
            str(kind), ""))
        if not isinstance(text, str) or not text:
            return b""
        self.delivered.add(text)
        opened.pieces.append(text)
        where = {"item_id": opened.item["id"], "output_index": opened.index}
        if opened.kind in ("text", "json"):
            return self.events("response.output_text.delta", **where, content_index=0, delta=text, logprobs=[])
        if opened.kind == "thinking":
            return self.events("response.reasoning_text.delta", **where, content_index=0, delta=text)
        if opened.item["type"] == "function_call":
            return self.events("response.function_call_arguments.delta", **where, delta=text)
        return b""  # a free-form tool's input is JSON-quoted here: it goes out whole when the block ends

    def _finish(self, block_index: int) -> bytes:
        opened = self._open.pop(block_index, None)
        if opened is None:
            return b""
        text = "".join(opened.pieces)
        where = {"item_id": opened.item["id"], "output_index": opened.index}
        out = b""
        if opened.kind in ("text", "json"):
            part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
            item = {**opened.item, "status": "completed", "content": [part]}
            out = (self.events("response.output_text.done", **where, content_index=0, text=text, logprobs=[])
                   + self.events("response.content_part.done", **where, content_index=0, part=part))
        elif opened.kind == "thinking":
            part = {"type": "reasoning_text", "text": text}
            item = {**opened.item, "status": "completed", "content": [part], "encrypted_content": seal(text, opened.signature)}
            out = (self.events("response.reasoning_text.done", **where, content_index=0, text=text)
                   + self.events("response.content_part.done", **where, content_index=0, part=part))
        else:
            item = self.names.call_item(opened.item["id"], opened.item["call_id"], self._provider_name(opened.item),
                                        text or "{}", "completed")
            if item["type"] == "function_call":
                out = self.events("response.function_call_arguments.done", **where, arguments=item["arguments"])
            else:
                out = (self.events("response.custom_tool_call_input.delta", **where, delta=item["input"])
                       + self.events("response.custom_tool_call_input.done", **where, input=item["input"]))
        self._done[opened.index] = item
        return out + self.events("response.output_item.done", output_index=opened.index, item=item)

    @staticmethod
    def _provider_name(item: dict[str, Any]) -> str:
        return ToolNames.flat(item["name"], item.get("namespace"))

    def closing(self) -> bytes:
        leftovers = b"".join(self._finish(index) for index in list(self._open))
        status, incomplete = _ending(self._stop_reason)
        final = {
            **self.response,
            "status": status,
            "incomplete_details": incomplete,
            "output": [self._done[index] for index in sorted(self._done)],
            "usage": usage_of.to_responses(self.usage or TokenUsage()),
        }
        return leftovers + self.events(f"response.{status}", response=final)

    def error(self, message: str, kind: str) -> bytes:
        return responses.error_frames(self.events, self.response, message, kind)
