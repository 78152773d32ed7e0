"""Translating there and back keeps the meaning: requests, answers, streams and usage."""

from __future__ import annotations

import itertools
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.catalogue import Route
from domain.pricing import Price
from domain.usage import TokenUsage
from edge.relay import usage as usage_of
from edge.relay.sse import Parser
from edge.relay.translate import chat_to_messages as o2a
from edge.relay.translate import messages_to_chat as a2o

ROUTE = Route("p", "m", Price.of("1", "1"))
text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="!"), min_size=1, max_size=40)
ids = st.from_regex(r"call_[A-Za-z0-9]{4,10}", fullmatch=True)
names = st.from_regex(r"[a-z][a-z_]{0,15}", fullmatch=True)
arguments = st.dictionaries(names, st.one_of(st.integers(-5, 5), text, st.booleans()), max_size=3)


@st.composite
def conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Valid OpenAI conversations: tool calls are always answered before the next user turn."""
    messages: list[dict[str, Any]] = []
    if draw(st.booleans()):
        messages.append({"role": "system", "content": draw(text)})
    for _ in range(draw(st.integers(1, 4))):
        messages.append({"role": "user", "content": draw(text)})
        if not draw(st.booleans()):
            continue
        calls = [
            {"id": draw(ids) + str(n), "type": "function", "function": {"name": draw(names), "arguments": json.dumps(draw(arguments))}}
            for n in range(draw(st.integers(0, 2)))
        ]
        assistant: dict[str, Any] = {"role": "assistant", "content": draw(st.one_of(st.none(), text)) if calls else draw(text)}
        if calls:
            assistant["tool_calls"] = calls
        messages.append(assistant)
        messages += [{"role": "tool", "tool_call_id": c["id"], "content": draw(text)} for c in calls]
    return messages


def meaning(messages: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Roles, texts, tool calls and results, with runs of user text joined."""
    out: list[tuple[Any, ...]] = []
    for message in messages:
        role = message["role"]
        content = message.get("content")
        body = content if isinstance(content, str) else "".join(p.get("text", "") for p in content or [])
        if role == "assistant":
            calls = tuple((c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
                          for c in message.get("tool_calls") or [])
            out.append(("assistant", body or "", calls))
        elif role == "tool":
            out.append(("tool", message["tool_call_id"], body))
        elif out and out[-1][0] == role:
            out[-1] = (role, out[-1][1] + body)
        else:
            out.append((role, body))
    return out


@settings(max_examples=200, deadline=None)
@given(conversations(), st.booleans())
def test_an_openai_request_survives_a_trip_through_anthropic(messages: list[dict[str, Any]], stream: bool) -> None:
    body = {"model": "x", "max_tokens": 100, "messages": messages, "stop": ["END"], "temperature": 0.5}
    there = json.loads(o2a.ChatToMessages().encode(o2a.translate_request(body, ROUTE, stream), 100))
    assert there["max_tokens"] == 100 and there["stop_sequences"] == ["END"]
    roles = [m["role"] for m in there["messages"]]
    assert roles[0] == "user" and all(a != b for a, b in itertools.pairwise(roles))  # turns alternate
    for turn in there["messages"]:
        kinds = [block["type"] for block in turn["content"]]
        assert kinds == sorted(kinds, key=lambda kind: kind != "tool_result")  # results lead their turn
    back = json.loads(a2o.MessagesToChat().encode(a2o.translate_request({**there, "model": "x"}, ROUTE, stream), 100))
    assert meaning(back["messages"]) == meaning(messages)
    assert back["max_completion_tokens"] == 100 and back["stop"] == ["END"]


blocks = st.lists(
    st.one_of(
        st.builds(lambda t: {"type": "text", "text": t}, text),
        st.builds(lambda i, n, a: {"type": "tool_use", "id": i, "name": n, "input": a}, ids, names, arguments),
    ),
    min_size=1, max_size=4,
)
counts = st.integers(0, 10**6)


@settings(max_examples=200, deadline=None)
@given(blocks, st.sampled_from(["end_turn", "max_tokens", "tool_use"]), counts, counts, counts, counts)
def test_an_anthropic_answer_survives_a_trip_through_openai(
    content: list[dict[str, Any]], stop: str, fresh: int, out: int, read: int, written: int
) -> None:
    usage = {"input_tokens": fresh, "output_tokens": out, "cache_read_input_tokens": read, "cache_creation_input_tokens": written}
    answer = {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": content,
              "stop_reason": stop, "stop_sequence": None, "usage": usage}
    there = o2a.translate_response(answer, "alias")
    assert there["usage"]["prompt_tokens"] == fresh + read + written
    back = a2o.translate_response(there, "alias")
    texts = "".join(b["text"] for b in content if b["type"] == "text")
    assert "".join(b["text"] for b in back["content"] if b["type"] == "text") == texts
    assert [(b["id"], b["name"], b["input"]) for b in back["content"] if b["type"] == "tool_use"] == [
        (b["id"], b["name"], b["input"]) for b in content if b["type"] == "tool_use"]
    assert back["stop_reason"] == stop
    assert back["usage"] == usage


@given(counts, counts, counts, counts)
def test_usage_converts_both_ways_counting_each_token_once(fresh: int, out: int, read: int, written: int) -> None:
    usage = TokenUsage(input=fresh, output=out, cache_read=read, cache_write=written)
    assert usage_of.from_openai(usage_of.to_openai(usage)) == usage
    assert usage_of.from_anthropic(usage_of.to_anthropic(usage)) == usage
    assert usage_of.to_openai(usage)["prompt_tokens"] == fresh + read + written
    assert usage_of.to_anthropic(usage)["input_tokens"] == fresh


def _anthropic_events(content: list[dict[str, Any]], usage: dict[str, int]) -> bytes:
    def event(name: str, data: dict[str, Any]) -> bytes:
        return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n".encode()

    start = {k: v for k, v in usage.items() if k != "output_tokens"} | {"output_tokens": 1}
    out = [event("message_start", {"message": {"id": "msg_9", "type": "message", "role": "assistant", "content": [],
                                               "model": "m", "usage": start}})]
    for index, block in enumerate(content):
        if block["type"] == "text":
            out.append(event("content_block_start", {"index": index, "content_block": {"type": "text", "text": ""}}))
            for piece in (block["text"][: len(block["text"]) // 2], block["text"][len(block["text"]) // 2:]):
                out.append(event("content_block_delta", {"index": index, "delta": {"type": "text_delta", "text": piece}}))
        else:
            out.append(event("content_block_start", {"index": index, "content_block": {
                "type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}}))
            encoded = json.dumps(block["input"])
            for piece in (encoded[:3], encoded[3:]):
                out.append(event("content_block_delta", {"index": index, "delta": {"type": "input_json_delta", "partial_json": piece}}))
        out.append(event("content_block_stop", {"index": index}))
    out.append(event("message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": usage["output_tokens"]}}))
    out.append(event("message_stop", {}))
    return b"".join(out)


def _reassemble(stream: bytes) -> tuple[str, list[tuple[str, str, Any]], dict[str, Any]]:
    text, tools, usage = "", [], {}
    partial: dict[int, list[Any]] = {}
    for event in Parser().feed(stream):
        data = json.loads(event.data)
        if data["type"] == "content_block_start" and data["content_block"]["type"] == "tool_use":
            block = data["content_block"]
            partial[data["index"]] = [block["id"], block["name"], ""]
        elif data["type"] == "content_block_delta":
            delta = data["delta"]
            if delta["type"] == "text_delta":
                text += delta["text"]
            else:
                partial[data["index"]][2] += delta["partial_json"]
        elif data["type"] == "message_delta":
            usage = data["usage"]
    tools = [(i, n, json.loads(a or "{}")) for i, n, a in partial.values()]
    return text, tools, usage


@settings(max_examples=150, deadline=None)
@given(blocks, counts, counts, counts, counts, st.integers(1, 64))
def test_a_stream_survives_a_trip_through_the_other_protocol(
    content: list[dict[str, Any]], fresh: int, out: int, read: int, written: int, cut: int
) -> None:
    usage = {"input_tokens": fresh, "output_tokens": out, "cache_read_input_tokens": read, "cache_creation_input_tokens": written}
    original = _anthropic_events(content, usage)
    to_openai = o2a.MessagesToChatStream("alias", client_wants_usage=True)
    openai_bytes = b"".join(to_openai.feed(e) for e in Parser().feed(original)) + to_openai.closing()
    assert to_openai.finished and to_openai.usage == usage_of.from_anthropic(usage)
    back = a2o.ChatToMessagesStream("alias")
    parser, anthropic_bytes = Parser(), b""
    for start in range(0, len(openai_bytes), cut):  # arbitrary network chunking
        for event in parser.feed(openai_bytes[start:start + cut]):
            anthropic_bytes += back.feed(event)
    anthropic_bytes += back.closing()
    assert back.finished and back.usage == usage_of.from_anthropic(usage)
    text, tools, final_usage = _reassemble(anthropic_bytes)
    assert text == "".join(b["text"] for b in content if b["type"] == "text")
    assert tools == [(b["id"], b["name"], b["input"]) for b in content if b["type"] == "tool_use"]
    assert final_usage == usage


@given(st.lists(st.binary(min_size=0, max_size=30), max_size=20), st.integers(1, 50))
def test_sse_parsing_does_not_depend_on_how_bytes_arrive(payloads: list[bytes], cut: int) -> None:
    stream = b"".join(b"event: e\ndata: " + p.replace(b"\n", b" ").replace(b"\r", b" ").hex().encode() + b"\n\n" for p in payloads)
    whole = [(e.name, e.data) for e in Parser().feed(stream)]
    parser, pieces = Parser(), []
    for start in range(0, len(stream), cut):
        pieces += [(e.name, e.data) for e in parser.feed(stream[start:start + cut])]
    assert pieces == whole and len(whole) == len(payloads)


def test_images_map_both_ways() -> None:
    body = {"model": "x", "max_tokens": 10, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "high"}},
    ]}]}
    there = o2a.translate_request(body, ROUTE, False)
    assert there["messages"][0]["content"][1:] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]
    back = a2o.translate_request({**there, "model": "x"}, ROUTE, False)
    assert [part.get("image_url", {}).get("url") for part in back["messages"][0]["content"][1:]] == [
        "data:image/png;base64,iVBORw0KGgo=", "https://example.com/cat.jpg"]


def test_untranslatable_requests_are_refused_with_a_reason() -> None:
    import pytest

    from edge.errors import Problem

    bad = [
        {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}]},
        {"messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "json_schema", "json_schema": {"schema": []}}},
        {"messages": [{"role": "function", "content": "x"}]},
    ]
    for extra in bad:
        with pytest.raises(Problem) as refused:
            o2a.translate_request({"model": "x", "max_tokens": 5, **extra}, ROUTE, False)
        assert refused.value.status == 400 and refused.value.message
    with pytest.raises(Problem):
        a2o.translate_request({"model": "x", "max_tokens": 5, "stop_sequences": list("abcde"),
                               "messages": [{"role": "user", "content": "hi"}]}, ROUTE, False)
    with pytest.raises(Problem):
        a2o.translate_request({"model": "x", "max_tokens": 5, "messages": [{"role": "user", "content": [
            {"type": "document", "source": {}}]}]}, ROUTE, False)
