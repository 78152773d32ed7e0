"""The Responses API ⇄ Messages translation, rule by rule, both ways, as properties:
requests keep their meaning, answers (whole and streamed) come back as what the openai
SDK's own stream accumulator accepts, and usage counts each token once."""

from __future__ import annotations

import itertools
import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai._models import construct_type
from openai._types import omit
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import ResponseStreamEvent

from domain.catalogue import Route
from domain.pricing import Price
from domain.usage import TokenUsage
from edge.errors import Problem
from edge.relay import usage as usage_of
from edge.relay.sse import Event, Parser
from edge.relay.translate import messages_to_responses as m2r
from edge.relay.translate import responses_to_messages as r2m

ROUTE = Route("p", "m", Price.of("1", "1"))
text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="!"), min_size=1, max_size=30)
names = st.from_regex(r"[a-z][a-z_]{0,12}", fullmatch=True)
ids = st.from_regex(r"call_[A-Za-z0-9]{4,10}", fullmatch=True)
arguments = st.dictionaries(names, st.one_of(st.integers(-5, 5), text, st.booleans()), max_size=3)
counts = st.integers(0, 10**6)


@st.composite
def conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Valid Responses input: each call answered before the next user message."""
    items: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(1, 4))):
        content = draw(st.one_of(text, st.lists(st.builds(lambda t: {"type": "input_text", "text": t}, text), min_size=1, max_size=2)))
        items.append({"role": "user", "content": content} if draw(st.booleans()) else
                     {"type": "message", "role": "user", "content": content})
        if draw(st.booleans()):
            items.append({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": draw(text)}]})
        calls = [{"type": "function_call", "call_id": draw(ids) + str(n), "name": draw(names), "arguments": json.dumps(draw(arguments))}
                 for n in range(draw(st.integers(0, 2)))]
        items += calls
        items += [{"type": "function_call_output", "call_id": c["call_id"], "output": draw(text)} for c in calls]
    return items


def _responses_meaning(items: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """(role, what) per block, runs of one role merged into a turn, tool results first."""
    turns: list[tuple[str, list[tuple[Any, ...]]]] = []
    for item in items:
        kind = item.get("type", "message")
        if kind == "message":
            content = item["content"]
            texts = [content] if isinstance(content, str) else [part["text"] for part in content]
            role, blocks = item["role"], [("text", t) for t in texts]
        elif kind == "function_call":
            role, blocks = "assistant", [("call", item["call_id"], item["name"], json.loads(item["arguments"]))]
        else:
            role, blocks = "user", [("result", item["call_id"], item["output"])]
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(blocks)
        else:
            turns.append((role, blocks))
    return [(role, block) for role, blocks in turns
            for block in sorted(blocks, key=lambda b: b[0] != "result")]


def _messages_meaning(messages: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for message in messages:
        for block in message["content"]:
            if block["type"] == "text":
                out.append((message["role"], ("text", block["text"])))
            elif block["type"] == "tool_use":
                out.append((message["role"], ("call", block["id"], block["name"], block["input"])))
            else:
                out.append((message["role"], ("result", block["tool_use_id"], block["content"])))
    return out


@settings(max_examples=200, deadline=None)
@given(conversations(), st.one_of(st.none(), text), st.lists(text, max_size=2), st.booleans())
def test_instructions_messages_calls_and_outputs_become_system_and_alternating_turns(
    items: list[dict[str, Any]], instructions: str | None, developer: list[str], stream: bool
) -> None:
    body = {"model": "x", "instructions": instructions,
            "input": [{"type": "message", "role": "developer", "content": d} for d in developer] + items}
    sent, _ = r2m.translate_request(body, ROUTE, stream)
    assert [b["text"] for b in sent.get("system", [])] == [t for t in [instructions, *developer] if t]
    roles = [m["role"] for m in sent["messages"]]
    assert roles[0] == "user" and all(a != b for a, b in itertools.pairwise(roles))
    for turn in sent["messages"]:
        kinds = [block["type"] for block in turn["content"]]
        assert kinds == sorted(kinds, key=lambda kind: kind != "tool_result")
    assert _messages_meaning(sent["messages"]) == _responses_meaning(items)
    assert sent.get("stream", False) is stream


tool_kinds = st.sampled_from(["function", "custom", "grammar"])


@st.composite
def toolsets(draw: st.DrawFn) -> list[dict[str, Any]]:
    def one(name: str) -> dict[str, Any]:
        kind = draw(tool_kinds)
        if kind == "function":
            return {"type": "function", "name": name, "description": draw(text),
                    "parameters": {"type": "object", "properties": {"a": {"type": "string"}}}}
        tool: dict[str, Any] = {"type": "custom", "name": name}
        if kind == "grammar":
            tool["format"] = {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"}
        return tool

    plain = [one(name) for name in draw(st.lists(names, unique=True, max_size=3))]
    spaces = draw(st.lists(names.map(lambda n: "ns" + n), unique=True, max_size=2))
    nested = [{"type": "namespace", "name": space, "description": "d",
               "tools": [one(name) for name in draw(st.lists(names, unique=True, min_size=1, max_size=2))]}
              for space in spaces]
    return plain + nested + ([{"type": "web_search", "external_web_access": False}] if draw(st.booleans()) else [])


def _declared(tools: list[dict[str, Any]]) -> list[tuple[str | None, dict[str, Any]]]:
    return [(None, t) for t in tools if t["type"] in ("function", "custom")] + [
        (space["name"], t) for space in tools if space["type"] == "namespace" for t in space["tools"]]


@settings(max_examples=200, deadline=None)
@given(toolsets(), text, arguments)
def test_tools_map_to_messages_tools_and_their_calls_come_back_under_their_own_names(
    tools: list[dict[str, Any]], free_form: str, args: dict[str, Any]
) -> None:
    sent, names = r2m.translate_request({"model": "x", "input": "hi", "tools": tools}, ROUTE, False)
    declared = _declared(tools)
    assert [t["name"] for t in sent.get("tools", [])] == [r2m.ToolNames.flat(t["name"], space) for space, t in declared]
    for (space, tool), mapped in zip(declared, sent.get("tools", []), strict=True):
        if tool["type"] == "custom":  # one string input, the grammar told in the description
            assert mapped["input_schema"]["required"] == ["input"]
            assert ("definition" not in tool.get("format", {})) or tool["format"]["definition"] in mapped["description"]
        else:
            assert mapped["input_schema"] == tool["parameters"]
        provider_input = {"input": free_form} if tool["type"] == "custom" else args
        item = names.call_item("fc_1", "call_1", mapped["name"], orjson.dumps(provider_input).decode(), "completed")
        assert item["name"] == tool["name"] and item.get("namespace") == space
        if tool["type"] == "custom":
            assert item["type"] == "custom_tool_call" and item["input"] == free_form
        else:
            assert item["type"] == "function_call" and json.loads(item["arguments"]) == args
        # ... and a call the client sends back in its history reaches the provider under the same name
        back = {"type": "custom_tool_call", "call_id": "call_1", "name": tool["name"], "input": free_form} \
            if tool["type"] == "custom" else \
            {"type": "function_call", "call_id": "call_1", "name": tool["name"], "arguments": json.dumps(args)}
        if space is not None:
            back["namespace"] = space
        history, _ = r2m.translate_request({"model": "x", "input": [{"role": "user", "content": "go"}, back]}, ROUTE, False)
        (use,) = history["messages"][1]["content"]
        assert use["name"] == mapped["name"] and use["input"] == provider_input


@given(st.sampled_from(["auto", "none", "required"]) | names.map(lambda n: {"type": "function", "name": n}),
       st.sampled_from([None, True, False]))
def test_tool_choice_and_parallel_calls_map_directly(choice: Any, parallel: bool | None) -> None:
    name = choice["name"] if isinstance(choice, dict) else "f"
    tools = [{"type": "function", "name": name, "parameters": {"type": "object"}}]
    sent, _ = r2m.translate_request({"model": "x", "input": "hi", "tools": tools, "tool_choice": choice,
                                     "parallel_tool_calls": parallel}, ROUTE, False)
    expected = {"auto": {"type": "auto"}, "none": {"type": "none"}, "required": {"type": "any"}}.get(
        choice if isinstance(choice, str) else "", {"type": "tool", "name": name})
    if parallel is False and expected["type"] != "none":
        expected = {**expected, "disable_parallel_tool_use": True}
    assert sent["tool_choice"] == expected


@pytest.mark.parametrize("tool", [
    {"type": "file_search", "vector_store_ids": ["v"]}, {"type": "code_interpreter", "container": {"type": "auto"}},
    {"type": "computer_use_preview", "display_width": 1, "display_height": 1, "environment": "linux"},
    {"type": "image_generation"}, {"type": "mcp", "server_label": "s"}, {"type": "local_shell"},
])
def test_a_hosted_tool_without_an_equivalent_is_a_400_that_names_it(tool: dict[str, Any]) -> None:
    with pytest.raises(Problem) as refused:
        r2m.translate_request({"model": "x", "input": "hi", "tools": [tool]}, ROUTE, False)
    assert refused.value.status == 400 and tool["type"] in refused.value.message


@pytest.mark.parametrize("field", ["previous_response_id", "conversation", "prompt"])
def test_state_kept_by_the_provider_is_a_clear_400(field: str) -> None:
    with pytest.raises(Problem) as refused:
        r2m.translate_request({"model": "x", "input": "hi", field: "resp_1" if field != "prompt" else {"id": "p"}}, ROUTE, False)
    assert refused.value.status == 400 and "input" in refused.value.message


@given(st.sampled_from([None, "none", "minimal", "low", "medium", "high", "xhigh"]), st.integers(1, 64_000),
       st.sampled_from([None, "auto", "required"]))
def test_reasoning_effort_becomes_a_thinking_budget_within_the_granted_limit(effort: Any, limit: int, choice: Any) -> None:
    body: dict[str, Any] = {"model": "x", "input": "hi", "temperature": 0.5,
                            "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}]}
    if effort is not None:
        body["reasoning"] = {"effort": effort}
    if choice is not None:
        body["tool_choice"] = choice
    adapter = r2m.ResponsesToMessages()
    sent = json.loads(adapter.encode(adapter.request(body, ROUTE, False), limit))
    assert sent["max_tokens"] == limit
    wanted = r2m.THINKING_BUDGET.get(str(effort))
    if wanted is None or choice == "required" or min(wanted, limit - 1) < r2m.MIN_THINKING:
        assert "thinking" not in sent
    else:
        assert sent["thinking"] == {"type": "enabled", "budget_tokens": min(wanted, limit - 1)}
        assert "temperature" not in sent  # Anthropic takes no temperature with thinking


blocks = st.lists(
    st.one_of(
        st.builds(lambda t: {"type": "text", "text": t}, text),
        st.builds(lambda i, n, a: {"type": "tool_use", "id": i, "name": n, "input": a}, ids, names, arguments),
        st.builds(lambda t, s: {"type": "thinking", "thinking": t, "signature": s}, text, st.from_regex(r"[A-Za-z0-9+/]{8,20}", fullmatch=True)),
    ),
    min_size=1, max_size=4,
).map(lambda content: [{**b, "id": f"{b['id']}{n}"} if b["type"] == "tool_use" else b for n, b in enumerate(content)])


def _items_meaning(output: list[Any]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for item in output:
        item = item if isinstance(item, dict) else item.model_dump()
        if item["type"] == "message":
            out.append(("text", "".join(part["text"] for part in item["content"])))
        elif item["type"] == "function_call":
            out.append(("call", item["call_id"], item["name"], json.loads(item["arguments"])))
        else:
            out.append(("thinking", "".join(part["text"] for part in item["content"]), item["encrypted_content"]))
    return out


def _blocks_meaning(content: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [("text", b["text"]) if b["type"] == "text" else ("call", b["id"], b["name"], b["input"])
            if b["type"] == "tool_use" else ("thinking", b["thinking"], m2r.seal(b["thinking"], b["signature"])) for b in content]


def _anthropic_stream(content: list[dict[str, Any]], usage: dict[str, int], stop: str) -> bytes:
    def event(name: str, data: dict[str, Any]) -> bytes:
        return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n".encode()

    start = {k: v for k, v in usage.items() if k != "output_tokens"} | {"output_tokens": 1}
    out = [event("message_start", {"message": {"id": "msg_9", "type": "message", "role": "assistant", "content": [],
                                               "model": "m", "usage": start}}), event("ping", {})]
    for index, block in enumerate(content):
        if block["type"] == "text":
            out.append(event("content_block_start", {"index": index, "content_block": {"type": "text", "text": ""}}))
            half = len(block["text"]) // 2
            for piece in (block["text"][:half], block["text"][half:]):
                out.append(event("content_block_delta", {"index": index, "delta": {"type": "text_delta", "text": piece}}))
        elif block["type"] == "thinking":
            out.append(event("content_block_start", {"index": index, "content_block": {"type": "thinking", "thinking": ""}}))
            out.append(event("content_block_delta", {"index": index, "delta": {"type": "thinking_delta", "thinking": block["thinking"]}}))
            out.append(event("content_block_delta", {"index": index, "delta": {"type": "signature_delta", "signature": block["signature"]}}))
        else:
            out.append(event("content_block_start", {"index": index, "content_block": {
                "type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}}))
            encoded = json.dumps(block["input"])
            for piece in ("", encoded[:3], encoded[3:]):
                out.append(event("content_block_delta", {"index": index, "delta": {"type": "input_json_delta", "partial_json": piece}}))
        out.append(event("content_block_stop", {"index": index}))
    out.append(event("message_delta", {"delta": {"stop_reason": stop}, "usage": {"output_tokens": usage["output_tokens"]}}))
    out.append(event("message_stop", {}))
    return b"".join(out)


@settings(max_examples=150, deadline=None)
@given(blocks, st.sampled_from(["end_turn", "tool_use", "max_tokens"]), counts, counts, counts, counts, st.integers(1, 64))
def test_an_answer_comes_back_whole_or_streamed_as_the_sdk_accepts_it(
    content: list[dict[str, Any]], stop: str, fresh: int, out: int, read: int, written: int, cut: int
) -> None:
    usage = {"input_tokens": fresh, "output_tokens": out, "cache_read_input_tokens": read, "cache_creation_input_tokens": written}
    request = {"model": "alias", "input": "hi"}
    whole = m2r.translate_response({"id": "msg_9", "content": content, "stop_reason": stop, "usage": usage},
                                   "alias", m2r.ToolNames(), request)
    assert _items_meaning(whole["output"]) == _blocks_meaning(content)
    assert (whole["status"], whole["incomplete_details"]) == (
        ("incomplete", {"reason": "max_output_tokens"}) if stop == "max_tokens" else ("completed", None))
    assert whole["usage"]["input_tokens"] == fresh + read + written  # Responses: cached tokens inside input_tokens
    assert whole["usage"]["input_tokens_details"]["cached_tokens"] == read
    assert usage_of.from_responses(whole["usage"]) == usage_of.from_anthropic(usage)

    processor = m2r.MessagesToResponsesStream("alias", request, m2r.ToolNames())
    original, parser, produced = _anthropic_stream(content, usage, stop), Parser(), b""
    for start in range(0, len(original), cut):  # arbitrary network chunking
        for event in parser.feed(original[start:start + cut]):
            produced += processor.feed(event)
    assert processor.finished and processor.usage == usage_of.from_anthropic(usage)
    produced += processor.closing()
    state: ResponseStreamState[Any] = ResponseStreamState(input_tools=omit, text_format=omit)
    events = [json.loads(e.data) for e in Parser().feed(produced) if e.data]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    for data in events:
        state.handle_event(construct_type(type_=ResponseStreamEvent, value=data))  # type: ignore[arg-type]
    if stop == "max_tokens":
        assert events[-1]["type"] == "response.incomplete"
        final = events[-1]["response"]
    else:
        assert state._completed_response is not None  # the SDK's own accumulator took the stream
        final = state._completed_response.model_dump()
    assert _items_meaning(final["output"]) == _blocks_meaning(content)
    assert usage_of.from_responses(final["usage"]) == usage_of.from_anthropic(usage)
    assert final["usage"]["total_tokens"] == whole["usage"]["total_tokens"]


@given(text, st.from_regex(r"[A-Za-z0-9+/=]{8,40}", fullmatch=True), st.booleans())
def test_thinking_travels_out_as_a_reasoning_item_and_back_unchanged(thought: str, signature: str, redacted: bool) -> None:
    block = {"type": "redacted_thinking", "data": signature} if redacted else \
        {"type": "thinking", "thinking": thought, "signature": signature}
    tool = {"type": "tool_use", "id": "call_1", "name": "f", "input": {}}
    answer = m2r.translate_response({"id": "msg_1", "content": [block, tool], "stop_reason": "tool_use"},
                                    "alias", m2r.ToolNames(), {})
    # as Codex sends it back: a reasoning item without its reasoning_text content
    history = [{"role": "user", "content": "go"}, *({k: v for k, v in i.items() if k != "content"} for i in answer["output"]),
               {"type": "function_call_output", "call_id": "call_1", "output": "ok"}]
    sent, _ = r2m.translate_request({"model": "x", "input": history}, ROUTE, False)
    assert sent["messages"][1]["content"] == [block, tool]  # thinking first, as Anthropic requires
    foreign = {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAA-openai-sealed"}
    sent, _ = r2m.translate_request({"model": "x", "input": [{"role": "user", "content": "go"}, foreign]}, ROUTE, False)
    assert all(b["type"] != "thinking" for m in sent["messages"] for b in m["content"])  # another model's is dropped


@given(counts, counts, counts, counts)
def test_usage_converts_both_ways_counting_each_token_once(fresh: int, out: int, read: int, written: int) -> None:
    usage = TokenUsage(input=fresh, output=out, cache_read=read, cache_write=written)
    assert usage_of.from_responses(usage_of.to_responses(usage)) == usage
    assert usage_of.to_responses(usage)["input_tokens"] == fresh + read + written


def test_a_json_answer_is_asked_as_a_forced_tool_or_as_structured_output_and_read_back_as_text() -> None:
    body = {"model": "x", "input": "where?", "text": {"format": {"type": "json_schema", "name": "c", "schema": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}}
    forced, names = r2m.translate_request(body, ROUTE, False)
    assert forced["tool_choice"] == {"type": "tool", "name": "json_answer"} and names.json_tool
    answer = m2r.translate_response({"id": "msg_1", "content": [
        {"type": "tool_use", "id": "t", "name": "json_answer", "input": {"city": "Paris"}}], "stop_reason": "tool_use"},
        "alias", names, body)
    assert [(i["type"], i["content"][0]["text"]) for i in answer["output"]] == [("message", '{"city":"Paris"}')]
    native, names = r2m.translate_request(body, Route("p", "m", Price.of("1", "1"), structured_output=True), False)
    assert native["output_config"]["format"]["schema"] == body["text"]["format"]["schema"] and not names.json_tool


def test_the_native_stream_holds_back_only_its_terminator() -> None:
    from edge.relay.native.responses import ResponsesPassthroughStream

    events = [
        {"type": "response.created", "sequence_number": 0, "response": {"id": "resp_1"}},
        {"type": "response.output_text.delta", "sequence_number": 1, "delta": "hello", "item_id": "m", "output_index": 0,
         "content_index": 0},
        {"type": "response.completed", "sequence_number": 2, "response": {"id": "resp_1", "usage": {
            "input_tokens": 10, "input_tokens_details": {"cached_tokens": 4}, "output_tokens": 7,
            "output_tokens_details": {"reasoning_tokens": 5}}}},
    ]
    processor = ResponsesPassthroughStream("alias", {})
    raw = [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events]
    sent = [processor.feed(Event(e["type"], json.dumps(e), r)) for e, r in zip(events, raw, strict=True)]
    assert sent == [raw[0], raw[1], b""] and processor.closing() == raw[2]
    assert processor.usage == TokenUsage(input=6, cache_read=4, output=7)  # reasoning inside output, cache once
    failed = json.loads(Parser().feed(processor.error("cut", "upstream_error"))[-1].data)
    assert failed["type"] == "response.failed" and failed["response"]["id"] == "resp_1" and failed["sequence_number"] == 4


def test_a_tool_loop_begun_without_thinking_goes_on_without() -> None:
    call = {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"}
    body = {"model": "x", "reasoning": {"effort": "high"},
            "input": [{"role": "user", "content": "go"}, call, {"type": "function_call_output", "call_id": "call_1", "output": "ok"}]}
    assert "thinking" not in r2m.translate_request(body, ROUTE, False)[0]  # Anthropic would refuse it
    answer = m2r.translate_response({"id": "msg_1", "stop_reason": "tool_use", "content": [
        {"type": "thinking", "thinking": "t", "signature": "s"}, {"type": "tool_use", "id": "call_1", "name": "f", "input": {}}]},
        "alias", m2r.ToolNames(), {})
    body["input"] = [{"role": "user", "content": "go"}, *answer["output"], body["input"][-1]]
    assert r2m.translate_request(body, ROUTE, False)[0]["thinking"]["type"] == "enabled"
