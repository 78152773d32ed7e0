"""``POST /v1/responses`` through the official openai SDK: relayed to an OpenAI-protocol
provider, and translated to Messages for an Anthropic-protocol one, each call billed
exactly, on both databases."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest

from edge.relay.translate.messages_to_responses import unseal
from tests.edge.billing import anthropic_cost, responses_cost
from tests.edge.test_openai_relay import logs, sdk
from tests.gateway import Gateway

TOOLS: list[Any] = [{"type": "function", "name": "get_weather", "description": "Current weather",
                     "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]


def marker() -> str:
    return "m" + uuid.uuid4().hex[:10]


def cost_of(record: Any) -> Decimal:
    return anthropic_cost(record.usage) if record.provider == "anthropic" else responses_cost(record.usage)


@pytest.mark.parametrize("model", ["gpt-test", "claude-test"])
def test_plain_and_streamed_answers_are_billed_exactly(gateway: Gateway, unique: str, model: str) -> None:
    token, key, _ = gateway.funded(unique, "100")
    client = sdk(gateway, key)
    tag = marker()
    answer = client.responses.create(model=model, instructions="be brief", input=f"hello {tag} !cache=40 !words=6",
                                     max_output_tokens=300)
    assert answer.output_text == " ".join(f"w{n}" for n in range(6)) and answer.status == "completed"
    assert answer.usage is not None and answer.usage.output_tokens == 6
    assert answer.usage.input_tokens_details.cached_tokens == 40  # Responses: input_tokens include cached ones
    with client.responses.stream(model=model, input=[{"role": "user", "content": f"{tag} streamed !words=9"}]) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == " ".join(f"w{n}" for n in range(9))
    records = gateway.fake.requests_for(tag)
    assert [r.provider for r in records] == (["openai"] * 2 if model == "gpt-test" else ["anthropic"] * 2)
    first, second = (r.body for r in records)
    if model == "gpt-test":
        assert first["model"] == "gpt-upstream" and first["instructions"] == "be brief" and first["max_output_tokens"] == 300
        assert answer.usage.input_tokens == records[0].usage["input_tokens"]
    else:
        assert first["model"] == "claude-upstream" and first["system"] == [{"type": "text", "text": "be brief"}]
        assert first["max_tokens"] == 300 and second["stream"] is True
        assert answer.usage.input_tokens == records[0].usage["input_tokens"] + 40
    assert "max_output_tokens" in second or "max_tokens" in second  # granted without a client limit
    me = gateway.settled(token, 2)
    assert Decimal(me["usedQuota"]) == sum(cost_of(r) for r in records)
    assert {e["endpoint"] for e in logs(gateway, token, 2)} == {"/v1/responses"}


@pytest.mark.parametrize("model", ["gpt-test", "claude-test"])
def test_function_tools_round_trip(gateway: Gateway, unique: str, model: str) -> None:
    token, key, _ = gateway.funded(unique, "100")
    client = sdk(gateway, key)
    tag = marker()
    first = client.responses.create(model=model, tools=TOOLS, input=f"weather? {tag} !tool")
    (call,) = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    with client.responses.stream(model=model, tools=TOOLS, input=f"weather? {tag} !tool streamed") as stream:
        arguments = "".join(e.delta for e in stream if e.type == "response.function_call_arguments.delta")
        streamed = stream.get_final_response()
    assert json.loads(arguments) == {"city": "Paris"}
    assert [item.type for item in streamed.output if item.type == "function_call"] == ["function_call"]
    history: list[Any] = [{"role": "user", "content": f"weather? {tag} !tool"}, call.model_dump(exclude_none=True),
                          {"type": "function_call_output", "call_id": call.call_id, "output": "15 degrees"}]
    final = client.responses.create(model=model, tools=TOOLS, input=history)
    assert final.output_text == "w0 w1 w2 w3 w4"  # the tool's result answered in text
    sent = gateway.fake.requests_for(tag)[-1].body
    if model == "gpt-test":
        assert sent["input"][-1] == {"type": "function_call_output", "call_id": call.call_id, "output": "15 degrees"}
    else:
        assert sent["tools"] == [{"name": "get_weather", "description": "Current weather", "input_schema": TOOLS[0]["parameters"]}]
        assert sent["messages"][1:] == [
            {"role": "assistant", "content": [{"type": "tool_use", "id": call.call_id, "name": "get_weather",
                                               "input": {"city": "Paris"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.call_id, "content": "15 degrees"}]},
        ]
    me = gateway.settled(token, 3)
    assert Decimal(me["usedQuota"]) == sum(cost_of(r) for r in gateway.fake.requests_for(tag))


def test_state_is_the_provider_s_or_a_clear_400(gateway: Gateway, unique: str) -> None:
    token, key, _ = gateway.funded(unique, "1000")  # a stored conversation is bounded by a whole context window
    client = sdk(gateway, key)
    tag = marker()
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model="claude-test", previous_response_id="resp_123", input=f"{tag} more")
    assert "send the whole conversation" in refused.value.message and refused.value.code == "unsupported_by_provider"
    with pytest.raises(openai.BadRequestError) as background:
        client.responses.create(model="gpt-test", background=True, input=f"{tag} later")
    assert "background" in background.value.message
    with pytest.raises(openai.BadRequestError) as hosted:
        client.responses.create(model="claude-test", tools=[{"type": "code_interpreter", "container": {"type": "auto"}}],
                                input=f"{tag} run")
    assert "code_interpreter" in hosted.value.message
    assert gateway.me(token)["usedQuota"] == "0"
    answer = client.responses.create(model="gpt-test", previous_response_id="resp_123", input=f"{tag} more")
    assert answer.output_text
    (record,) = gateway.fake.requests_for(tag)
    assert record.body["previous_response_id"] == "resp_123"  # the provider keeps the conversation


@pytest.mark.parametrize("model", ["gpt-test", "claude-test"])
def test_a_broken_stream_raises_in_the_sdk_and_bills_what_the_provider_reported(
    gateway: Gateway, unique: str, model: str
) -> None:
    token, key, _ = gateway.funded(unique, "100")
    client = sdk(gateway, key)
    directives = ["!drop", "!midstream-error", "!garbage", "!dropstart"]
    for directive in directives:
        with pytest.raises(openai.APIError):
            for _ in client.responses.create(model=model, stream=True, input=f"{marker()} {directive} !words=6"):
                pass
    entries = logs(gateway, token, len(directives))
    assert {e["status"] for e in entries} == {"error"}
    cut_at_start = [e for e in entries if e["completionTokens"] == 0]
    if model == "claude-test":  # message_start reported the prompt before the cut: it is billed
        assert len(cut_at_start) == 1 and cut_at_start[0]["promptTokens"] > 0 and Decimal(cut_at_start[0]["cost"]) > 0
    else:  # response.created reports no usage: the cut call is free
        assert len(cut_at_start) == 1 and cut_at_start[0]["cost"] == "0"
    assert Decimal(gateway.me(token)["usedQuota"]) == sum(Decimal(e["cost"]) for e in entries)


def test_a_translated_stream_ends_with_the_lifecycle_events_strict_clients_expect(gateway: Gateway, unique: str) -> None:
    """Every event numbered in order; one response id; every item added is done; the
    terminator carries the items and the usage."""
    _, key, _ = gateway.funded(unique, "100")
    tag = marker()
    body = {"model": "claude-test", "stream": True, "tools": TOOLS, "reasoning": {"effort": "low"}, "max_output_tokens": 3000,
            "input": f"{tag} !tool !think"}
    with httpx.stream("POST", f"{gateway.url}/v1/responses", json=body, headers={"authorization": f"Bearer {key}"},
                      timeout=30) as response:
        events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[0]["type"] == "response.created" and events[-1]["type"] == "response.completed"
    assert {e["response"]["id"] for e in events if "response" in e} == {events[0]["response"]["id"]}
    added = [e["item"]["id"] for e in events if e["type"] == "response.output_item.added"]
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert added == [item["id"] for item in done] == [item["id"] for item in events[-1]["response"]["output"]]
    assert [item["type"] for item in done] == ["reasoning", "message", "function_call"]
    assert unseal(done[0]["encrypted_content"]) == {  # the thinking travels back, signed
        "type": "thinking", "thinking": "thinking it over", "signature": "sig_fake"}
    assert events[-1]["response"]["usage"]["output_tokens"] == 5
    (record,) = gateway.fake.requests_for(tag)
    assert record.body["thinking"] == {"type": "enabled", "budget_tokens": 2048} and record.body["max_tokens"] == 3000
