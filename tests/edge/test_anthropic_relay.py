"""The Anthropic Messages relay and translation both ways, driven by both official SDKs."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import anthropic
import httpx
import openai
import pytest

from tests.edge.billing import anthropic_cost, openai_cost
from tests.edge.test_openai_relay import TOOLS, logs, sdk
from tests.gateway import Gateway

CLAUDE_TOOLS = [{"name": "get_weather", "description": "Current weather",
                 "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]


def claude(gateway: Gateway, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0, timeout=30)


def marker() -> str:
    return "m" + uuid.uuid4().hex[:10]


# -- Anthropic client, Anthropic provider -------------------------------------------------

def test_native_messages_plain_and_streamed_with_cache_usage(gateway: Gateway, unique: str) -> None:
    token, key, _ = gateway.funded(unique, "100")
    client = claude(gateway, key)
    tag = marker()
    message = client.messages.create(
        model="claude-test", max_tokens=64, system=[{"type": "text", "text": "terse", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": f"{tag} !cache=2000 !cachewrite=300"}],
        extra_headers={"anthropic-beta": "prompt-caching-2024-07-31"},
    )
    assert message.content[0].text == "w0 w1 w2 w3 w4" and message.stop_reason == "end_turn"
    assert message.usage.cache_read_input_tokens == 2000 and message.usage.cache_creation_input_tokens == 300
    with client.messages.stream(model="claude-test", max_tokens=64,
                                messages=[{"role": "user", "content": f"{tag} stream !words=9"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == " ".join(f"w{n}" for n in range(9)) and final.usage.output_tokens == 9
    records = gateway.fake.requests_for(tag)
    assert [r.body["model"] for r in records] == ["claude-upstream", "claude-upstream"]
    assert records[0].headers["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert records[0].headers["x-api-key"] == "sk-ant-test-0123456789abcdef"
    me = gateway.settled(token, 2)
    assert Decimal(me["usedQuota"]) == sum(anthropic_cost(r.usage) for r in records)
    entries = logs(gateway, token, 2)
    cached = next(e for e in entries if not e["stream"])
    assert (cached["cacheReadTokens"], cached["cacheWriteTokens"]) == (2000, 300)
    assert cached["promptTokens"] == records[0].usage["input_tokens"] + 2300


def test_both_key_headers_and_any_version_are_accepted(gateway: Gateway, unique: str) -> None:
    _, key, _ = gateway.funded(unique, "100")
    body = {"model": "claude-test", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    for headers in ({"x-api-key": key, "anthropic-version": "2023-06-01"},
                    {"authorization": f"Bearer {key}", "anthropic-version": "2026-10-21"},
                    {"x-api-key": key}):
        answer = httpx.post(f"{gateway.url}/v1/messages?beta=true", json=body, headers=headers, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["type"] == "message"


def test_count_tokens_passes_through_or_estimates(gateway: Gateway, unique: str) -> None:
    token, key, _ = gateway.funded(unique, "1")
    client = claude(gateway, key)
    counted = client.messages.count_tokens(model="claude-test", messages=[{"role": "user", "content": "one two three"}])
    assert counted.input_tokens == 3 + 7  # the fake's count, passed through
    estimated = client.messages.count_tokens(model="gpt-test", system="be brief",
                                             messages=[{"role": "user", "content": "one two three four"}])
    assert 4 <= estimated.input_tokens < 100
    assert gateway.me(token)["usedQuota"] == "0"


def test_errors_come_in_anthropic_shape(gateway: Gateway, unique: str) -> None:
    _, key, _ = gateway.funded(unique, "1", models=["claude-test", "gpt-test"])
    client = claude(gateway, key)
    ask = {"max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(anthropic.AuthenticationError):
        claude(gateway, "tsk-" + "y" * 40).messages.create(model="claude-test", **ask)
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.create(model="no-such", **ask)
    assert missing.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(model="claude-test", messages=[{"role": "tool", "content": "x"}], max_tokens=5)
    with pytest.raises(anthropic.PermissionDeniedError):
        client.messages.create(model="gpt-fallback", **ask)
    with pytest.raises(anthropic.APIStatusError) as poor:
        client.messages.create(model="claude-test", messages=ask["messages"], max_tokens=32000)
    assert poor.value.status_code == 402 and "needs up to 48" in str(poor.value)
    with pytest.raises(anthropic.InternalServerError) as overloaded:
        client.messages.create(model="claude-test", max_tokens=10, messages=[{"role": "user", "content": "!status=529"}])
    assert overloaded.value.status_code == 502
    raw = httpx.post(f"{gateway.url}/v1/messages", content=b"{nope", headers={"x-api-key": key})
    assert raw.status_code == 400 and raw.json()["type"] == "error" and raw.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("model", ["claude-test", "gpt-test"])
def test_a_broken_stream_raises_in_the_anthropic_sdk(gateway: Gateway, unique: str, model: str) -> None:
    token, key, _ = gateway.funded(unique, "100")
    for directive in ("!drop", "!midstream-error"):
        with pytest.raises((anthropic.APIStatusError, anthropic.APIError)), claude(gateway, key).messages.stream(
            model=model, max_tokens=50, messages=[{"role": "user", "content": f"{marker()} {directive} !words=6"}]
        ) as stream:
            for _ in stream.text_stream:
                pass
    entries = logs(gateway, token, 2)
    assert {e["status"] for e in entries} == {"error"}
    assert all(e["completionTokens"] > 0 for e in entries)


def test_translated_answers_of_the_wrong_shape_are_the_providers_fault(gateway: Gateway, unique: str) -> None:
    """Valid JSON that is not what the provider's protocol promises (a string where an
    object belongs) cannot be translated: a 502, or a stream's error event, in the
    client's protocol, never a 500, and only what was delivered is billed. (Answers in
    the client's own protocol pass through as the provider sent them.)"""
    token, key, _ = gateway.funded(unique, "100")
    with pytest.raises(anthropic.APIStatusError) as whole:
        claude(gateway, key).messages.create(
            model="gpt-test", max_tokens=50, messages=[{"role": "user", "content": f"{marker()} !badshape"}]
        )
    assert whole.value.status_code == 502 and whole.value.body["error"]["type"] == "api_error"
    with pytest.raises(openai.APIStatusError) as plain:
        sdk(gateway, key).chat.completions.create(
            model="claude-test", max_tokens=50, messages=[{"role": "user", "content": f"{marker()} !badshape"}]
        )
    assert plain.value.status_code == 502 and plain.value.body["code"] == "upstream_error"
    with pytest.raises((anthropic.APIStatusError, anthropic.APIError)), claude(gateway, key).messages.stream(
        model="gpt-test", max_tokens=50, messages=[{"role": "user", "content": f"{marker()} !badshape !words=6"}]
    ) as stream:
        for _ in stream.text_stream:
            pass
    received = []
    with pytest.raises(openai.APIError):
        for chunk in sdk(gateway, key).chat.completions.create(
            model="claude-test", max_tokens=50, stream=True,
            messages=[{"role": "user", "content": f"{marker()} !badshape !words=6"}],
        ):
            received.append(chunk)
    assert any(c.choices and c.choices[0].delta.content for c in received)
    entries = logs(gateway, token, 4)
    assert {e["status"] for e in entries} == {"error"}
    assert sorted(e["completionTokens"] > 0 for e in entries) == [False, False, True, True]
    assert Decimal(gateway.me(token)["usedQuota"]) == sum(Decimal(e["cost"]) for e in entries)


# -- OpenAI client, Anthropic provider ---------------------------------------------------

def test_openai_client_on_an_anthropic_model(gateway: Gateway, unique: str) -> None:
    token, key, _ = gateway.funded(unique, "100")
    client = sdk(gateway, key)
    tag = marker()
    answer = client.chat.completions.create(
        model="claude-test", max_tokens=64, stop=["END"], user="u-1",
        messages=[{"role": "system", "content": "be terse"}, {"role": "developer", "content": "really"},
                  {"role": "user", "content": f"{tag} !cache=1000 !cachewrite=200"}],
    )
    assert answer.choices[0].message.content == "w0 w1 w2 w3 w4" and answer.choices[0].finish_reason == "stop"
    (record,) = gateway.fake.requests_for(tag)
    sent = record.body
    assert sent["system"] == [{"type": "text", "text": "be terse"}, {"type": "text", "text": "really"}]
    assert sent["messages"] == [{"role": "user", "content": [{"type": "text", "text": f"{tag} !cache=1000 !cachewrite=200"}]}]
    assert sent["stop_sequences"] == ["END"] and sent["metadata"] == {"user_id": "u-1"} and sent["max_tokens"] == 64
    usage = record.usage
    assert answer.usage.prompt_tokens == usage["input_tokens"] + 1200  # OpenAI's prompt includes cached tokens
    assert answer.usage.prompt_tokens_details.cached_tokens == 1000
    assert answer.usage.completion_tokens == 5
    chunks = list(client.chat.completions.create(
        model="claude-test", max_tokens=64, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": f"{tag} streamed !words=7"}],
    ))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == " ".join(f"w{n}" for n in range(7))
    assert chunks[-1].usage.completion_tokens == 7 and not chunks[-1].choices
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    records = gateway.fake.requests_for(tag)
    assert Decimal(gateway.settled(token, 2)["usedQuota"]) == sum(anthropic_cost(r.usage) for r in records)


def test_openai_client_tools_on_an_anthropic_model(gateway: Gateway, unique: str) -> None:
    token, key, _ = gateway.funded(unique, "100")
    client = sdk(gateway, key)
    tag = marker()
    first = client.chat.completions.create(
        model="claude-test", max_tokens=100, tools=TOOLS, tool_choice={"type": "function", "function": {"name": "get_weather"}},
        parallel_tool_calls=False, messages=[{"role": "user", "content": f"{tag} !tool"}],
    )
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls"
    assert first.choices[0].message.content is None  # a forced call says nothing first
    assert call.id == "toolu_fake1" and json.loads(call.function.arguments) == {"city": "Paris"}
    sent = gateway.fake.requests_for(tag)[0].body
    assert sent["tools"][0] == {"name": "get_weather", "input_schema": TOOLS[0]["function"]["parameters"],
                                "description": "Current weather"}
    assert sent["tool_choice"] == {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True}
    arguments, ids = "", []
    for chunk in client.chat.completions.create(model="claude-test", max_tokens=100, tools=TOOLS, stream=True,
                                                messages=[{"role": "user", "content": f"{tag} !tool s"}]):
        for piece in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            arguments += piece.function.arguments or ""
            ids += [piece.id] if piece.id else []
    assert json.loads(arguments) == {"city": "Paris"} and ids == ["toolu_fake1"]
    client.chat.completions.create(
        model="claude-test", max_tokens=100, tools=TOOLS,
        messages=[
            {"role": "user", "content": f"{tag} round trip"},
            {"role": "assistant", "content": "Checking.", "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": "15 degrees"},
            {"role": "user", "content": "and tomorrow?"},
        ],
    )
    sent = gateway.fake.requests_for(f"{tag} round trip")[0].body["messages"]
    assert sent[1] == {"role": "assistant", "content": [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_fake1", "name": "get_weather", "input": {"city": "Paris"}}]}
    assert sent[2] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_fake1", "content": "15 degrees"},
        {"type": "text", "text": "and tomorrow?"}]}
    gateway.settled(token, 3)


def test_untranslatable_openai_requests_are_refused_before_any_charge(gateway: Gateway, unique: str) -> None:
    token, key, _ = gateway.funded(unique, "100")
    client = sdk(gateway, key)
    ask = {"model": "claude-test", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    for extra in ({"n": 2}, {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "array"}}}},
                  {"logprobs": True},
                  {"tools": [{"type": "code_interpreter"}]}):
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(**ask, **extra)
    assert gateway.me(token)["usedQuota"] == "0"


# -- Anthropic client, OpenAI provider ---------------------------------------------------

def test_anthropic_client_on_an_openai_model(gateway: Gateway, unique: str) -> None:
    token, key, _ = gateway.funded(unique, "100")
    client = claude(gateway, key)
    tag = marker()
    message = client.messages.create(
        model="gpt-test", max_tokens=64, system="be terse", stop_sequences=["END"], metadata={"user_id": "u-2"},
        messages=[{"role": "user", "content": f"{tag} !cache=3000"}],
    )
    assert message.content[0].text == "w0 w1 w2 w3 w4" and message.stop_reason == "end_turn"
    (record,) = gateway.fake.requests_for(tag)
    sent = record.body
    assert sent["messages"][0] == {"role": "system", "content": "be terse"}
    assert sent["max_completion_tokens"] == 64 and sent["stop"] == ["END"] and sent["user"] == "u-2"
    assert message.usage.cache_read_input_tokens == 3000
    assert message.usage.input_tokens == record.usage["prompt_tokens"] - 3000  # Anthropic's input excludes cache
    with client.messages.stream(model="gpt-test", max_tokens=64,
                                messages=[{"role": "user", "content": f"{tag} streamed !words=8"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == " ".join(f"w{n}" for n in range(8))
    assert final.usage.output_tokens == 8 and final.stop_reason == "end_turn"
    records = gateway.fake.requests_for(tag)
    assert records[1].body["stream_options"] == {"include_usage": True}
    assert Decimal(gateway.settled(token, 2)["usedQuota"]) == sum(openai_cost(r.usage) for r in records)


def test_anthropic_client_tools_on_an_openai_model(gateway: Gateway, unique: str) -> None:
    token, key, _ = gateway.funded(unique, "100")
    client = claude(gateway, key)
    tag = marker()
    first = client.messages.create(
        model="gpt-test", max_tokens=100, tools=CLAUDE_TOOLS, tool_choice={"type": "any"},
        messages=[{"role": "user", "content": f"{tag} !tool"}],
    )
    assert first.stop_reason == "tool_use"
    (use,) = [b for b in first.content if b.type == "tool_use"]
    assert use.name == "get_weather" and use.input == {"city": "Paris"}
    sent = gateway.fake.requests_for(tag)[0].body
    assert sent["tools"] == [{"type": "function", "function": {"name": "get_weather", "description": "Current weather",
                                                               "parameters": CLAUDE_TOOLS[0]["input_schema"]}}]
    assert sent["tool_choice"] == "required"
    with client.messages.stream(model="gpt-test", max_tokens=100, tools=CLAUDE_TOOLS,
                                messages=[{"role": "user", "content": f"{tag} !tool s"}]) as stream:
        final = stream.get_final_message()
    (streamed,) = [b for b in final.content if b.type == "tool_use"]
    assert streamed.input == {"city": "Paris"} and final.stop_reason == "tool_use"
    client.messages.create(
        model="gpt-test", max_tokens=100, tools=CLAUDE_TOOLS,
        messages=[
            {"role": "user", "content": f"{tag} round trip"},
            {"role": "assistant", "content": [{"type": "text", "text": "Checking."},
                                              {"type": "tool_use", "id": use.id, "name": use.name, "input": use.input}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "15 degrees"},
                                         {"type": "text", "text": "thanks"}]},
        ],
    )
    sent = gateway.fake.requests_for(f"{tag} round trip")[0].body["messages"]
    assert sent[1] == {"role": "assistant", "content": "Checking.", "tool_calls": [
        {"id": use.id, "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]}
    assert sent[2] == {"role": "tool", "tool_call_id": use.id, "content": "15 degrees"}
    assert sent[3] == {"role": "user", "content": "thanks"}
    gateway.settled(token, 3)


def test_a_claude_code_shaped_call(gateway: Gateway, unique: str) -> None:
    """What Claude Code sends: streamed, many tools, cached system blocks, 32k max_tokens, betas."""
    token, key, _ = gateway.funded(unique, "100")
    tools = [{"name": f"Tool{n}", "description": "does things " * 20,
              "input_schema": {"type": "object", "properties": {"arg": {"type": "string"}}}} for n in range(12)]
    body = {
        "model": "claude-sonnet-4-20250514", "max_tokens": 32000, "stream": True,
        "system": [{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
        "tools": tools, "metadata": {"user_id": "cc"},
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]}],
    }
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01",
               "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14"}
    with httpx.stream("POST", f"{gateway.url}/v1/messages", json=body, headers=headers, timeout=30) as response:
        assert response.status_code == 200
        events = [line.removeprefix("event: ") for line in response.iter_lines() if line.startswith("event: ")]
    assert events[0] == "message_start" and events[-1] == "message_stop"
    record = [r for r in gateway.fake.records if r.body.get("metadata") == {"user_id": "cc"}][-1]
    assert record.body["model"] == "claude-sonnet-4-6"  # the retired alias reaches its successor
    me = gateway.settled(token, 1)
    prices = (Decimal(300), Decimal(1500), Decimal(30), Decimal(375))
    assert Decimal(me["usedQuota"]) == anthropic_cost(record.usage, prices)


@pytest.mark.parametrize("model", ["claude-test", "gpt-test"])
def test_a_stream_cut_before_any_text_bills_the_prompt_only_if_the_provider_reported_it(
    gateway: Gateway, unique: str, model: str
) -> None:
    """Anthropic's message_start reports the prompt, which the provider has then charged:
    it is billed though no text followed. An OpenAI stream reports usage only at its end:
    cut at its start, nothing is known, and nothing is billed."""
    token, key, _ = gateway.funded(unique, "100")
    tag = marker()
    with pytest.raises((anthropic.APIStatusError, anthropic.APIError)), claude(gateway, key).messages.stream(
        model=model, max_tokens=50, messages=[{"role": "user", "content": f"{tag} !dropstart"}]
    ) as stream:
        for _ in stream.text_stream:
            pass
    (entry,) = logs(gateway, token, 1)
    (record,) = gateway.fake.requests_for(tag)
    assert entry["status"] == "error" and entry["completionTokens"] == 0
    if model == "claude-test":
        assert entry["promptTokens"] == record.usage["input_tokens"] and entry["usageSource"] == "estimated"
        assert Decimal(entry["cost"]) == anthropic_cost({**record.usage, "output_tokens": 0}) > 0
    else:
        assert entry["cost"] == "0"
    assert Decimal(gateway.me(token)["usedQuota"]) == Decimal(entry["cost"])


def test_concurrent_calls_without_max_tokens_never_overdraw(gateway: Gateway, unique: str) -> None:
    """Two workers, many OpenAI-client calls at once to a Claude model, none with a limit,
    each answer as long as its limit allows: the limits the ledger grants (sent upstream
    as max_tokens) fit the quota together, so the charges do."""
    token, key, _ = gateway.funded(unique, "3")
    tag = marker()

    def call(number: int) -> int:
        try:
            sdk(gateway, key).chat.completions.create(
                model="claude-test", messages=[{"role": "user", "content": f"{tag} {number} !words=3000"}])
        except openai.APIStatusError as refused:
            return refused.status_code
        return 200

    with ThreadPoolExecutor(12) as pool:
        statuses = list(pool.map(call, range(24)))
    assert set(statuses) <= {200, 402} and 200 in statuses
    records = gateway.fake.requests_for(tag)
    assert len(records) == statuses.count(200)
    assert sum(r.body["max_tokens"] for r in records) * Decimal(1500) / 1_000_000 <= 3  # granted together within the quota
    me = gateway.settled(token, len(records))
    assert Decimal(me["usedQuota"]) == sum(anthropic_cost(r.usage) for r in records) <= 3
