"""The OpenAI-compatible relay, driven by the official openai SDK, on both databases."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest

from tests.edge.billing import openai_cost
from tests.gateway import Gateway, wait_until

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


def sdk(gateway: Gateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0, timeout=30)


def logs(gateway: Gateway, token: str, count: int) -> list[dict[str, Any]]:
    def ready() -> list[dict[str, Any]] | None:
        with gateway.client(token) as http:
            items = http.get("/api/usage/logs", params={"pageSize": 100}).json()["items"]
        return items if len(items) >= count else None

    return list(wait_until(ready))


def marker() -> str:
    return "m" + uuid.uuid4().hex[:10]


def test_a_plain_call_answers_and_bills_the_exact_cost(gateway: Gateway, unique: str) -> None:
    token, key, _ = gateway.funded(unique, "100")
    tag = marker()
    raw = sdk(gateway, key).chat.completions.with_raw_response.create(
        model="gpt-test", max_tokens=50, temperature=0.3, seed=7,
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": f"hello {tag}"}],
    )
    answer = raw.parse()
    assert answer.choices[0].message.content == "w0 w1 w2 w3 w4"
    assert answer.choices[0].finish_reason == "stop"
    (record,) = gateway.fake.requests_for(tag)
    assert record.body["model"] == "gpt-upstream"  # routed under the provider's name
    assert record.body["temperature"] == 0.3 and record.body["seed"] == 7  # passed through untouched
    assert record.headers["Authorization"] == "Bearer sk-test-openai-0123456789abcdef"
    assert answer.usage is not None and answer.usage.prompt_tokens == record.usage["prompt_tokens"]
    request_id = raw.headers["x-request-id"]
    me = gateway.settled(token, 1)
    assert Decimal(me["usedQuota"]) == openai_cost(record.usage)
    (log,) = logs(gateway, token, 1)
    assert log["requestId"] == request_id and log["status"] == "success" and log["provider"] == "openai"
    assert log["promptTokens"] == record.usage["prompt_tokens"] and log["usageSource"] == "upstream"
    assert log["endpoint"] == "/v1/chat/completions" and log["stream"] is False


@pytest.mark.parametrize("include_usage", [True, False])
def test_streams_forward_every_chunk_and_show_usage_only_when_asked(gateway: Gateway, unique: str, include_usage: bool) -> None:
    token, key, _ = gateway.funded(unique, "100")
    tag = marker()
    options = {"stream_options": {"include_usage": True}} if include_usage else {}
    chunks = list(sdk(gateway, key).chat.completions.create(
        model="gpt-test", max_completion_tokens=50, stream=True,
        messages=[{"role": "user", "content": f"stream {tag} !words=12"}], **options,
    ))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == " ".join(f"w{n}" for n in range(12))
    usage_chunks = [c for c in chunks if not c.choices]
    assert len(usage_chunks) == (1 if include_usage else 0)
    (record,) = gateway.fake.requests_for(tag)
    assert record.body["stream_options"]["include_usage"] is True  # always asked upstream
    if include_usage:
        assert usage_chunks[0].usage.completion_tokens == 12
    assert Decimal(gateway.settled(token, 1)["usedQuota"]) == openai_cost(record.usage)


def test_tools_plain_and_streamed_and_a_tool_result_round_trip(gateway: Gateway, unique: str) -> None:
    token, key, _ = gateway.funded(unique, "100")
    client = sdk(gateway, key)
    tag = marker()
    first = client.chat.completions.create(
        model="gpt-test", max_tokens=100, tools=TOOLS, tool_choice="auto",
        messages=[{"role": "user", "content": f"weather? !tool {tag}"}],
    )
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    stream = client.chat.completions.create(
        model="gpt-test", max_tokens=100, tools=TOOLS, stream=True,
        messages=[{"role": "user", "content": f"weather? !tool {tag}"}],
    )
    arguments, names, finish = "", set(), None
    for chunk in stream:
        for delta_call in chunk.choices[0].delta.tool_calls or () if chunk.choices else ():
            arguments += delta_call.function.arguments or ""
            names.add(delta_call.function.name)
        if chunk.choices and chunk.choices[0].finish_reason:
            finish = chunk.choices[0].finish_reason
    assert json.loads(arguments) == {"city": "Paris"} and "get_weather" in names and finish == "tool_calls"
    final = client.chat.completions.create(
        model="gpt-test", max_tokens=100, tools=TOOLS,
        messages=[
            {"role": "user", "content": f"weather? {tag}"},
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": "15 degrees"},
        ],
    )
    assert final.choices[0].message.content
    sent = gateway.fake.requests_for(tag)[-1].body["messages"]
    assert sent[1]["tool_calls"][0]["id"] == call.id and sent[2] == {"role": "tool", "tool_call_id": call.id, "content": "15 degrees"}
    me = gateway.settled(token, 3)
    assert Decimal(me["usedQuota"]) == sum(openai_cost(r.usage) for r in gateway.fake.requests_for(tag))


def test_cached_prompt_tokens_are_billed_once_at_the_cache_price(gateway: Gateway, unique: str) -> None:
    token, key, _ = gateway.funded(unique, "100")
    tag = marker()
    answer = sdk(gateway, key).chat.completions.create(
        model="gpt-test", max_tokens=20, messages=[{"role": "user", "content": f"{tag} !cache=4000 !cachewrite=1000"}],
    )
    (record,) = gateway.fake.requests_for(tag)
    assert answer.usage.prompt_tokens_details.cached_tokens == 4000
    expected = openai_cost(record.usage)
    plain = record.usage["prompt_tokens"] - 5000
    assert expected == (Decimal(plain) * 100 + 4000 * 10 + 1000 * 125 + 5 * 300) / 1_000_000
    assert Decimal(gateway.settled(token, 1)["usedQuota"]) == expected
    (log,) = logs(gateway, token, 1)
    assert (log["cacheReadTokens"], log["cacheWriteTokens"]) == (4000, 1000)
    assert log["promptTokens"] == record.usage["prompt_tokens"]


def test_errors_come_in_openai_shape_with_the_right_status(gateway: Gateway, unique: str) -> None:
    token, key, _ = gateway.funded(unique, "1", models=["gpt-test"])
    client = sdk(gateway, key)
    ask = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 10}
    with pytest.raises(openai.AuthenticationError):
        sdk(gateway, "tsk-" + "x" * 40).chat.completions.create(model="gpt-test", **ask)
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="no-such-model", **ask)
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}], max_tokens=0)
    assert "max_tokens" in str(bad.value)
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model="claude-test", **ask)
    with pytest.raises(openai.APIStatusError) as poor:
        client.chat.completions.create(model="gpt-test", messages=ask["messages"], max_tokens=100_000)
    assert poor.value.status_code == 402
    assert poor.value.body["type"] == "insufficient_quota"
    assert "needs up to" in poor.value.message and "cents left" in poor.value.message
    with httpx.Client(base_url=gateway.url, headers={"authorization": f"Bearer {key}"}) as http:
        for body in (b"{oops", b"[]", json.dumps({"model": "gpt-test", "messages": "hi", "max_tokens": 5}).encode(),
                     json.dumps({"model": "gpt-test", "messages": [{"role": "user"}], "max_tokens": -1}).encode(),
                     json.dumps({"model": 5, "messages": [{"role": "user", "content": "x"}], "max_tokens": 5}).encode()):
            answer = http.post("/v1/chat/completions", content=body)
            assert answer.status_code == 400
            assert set(answer.json()["error"]) == {"message", "type", "param", "code"}
        unknown = http.post("/v1/chat/completions", headers={"authorization": "Bearer nope"}, content=b"{oops")
        assert unknown.status_code == 401  # an unknown key is told so before anything else
    assert gateway.me(token)["usedQuota"] == "0"


def test_upstream_failures_are_not_charged_and_fall_back_once(gateway: Gateway, unique: str) -> None:
    token, key, _ = gateway.funded(unique, "100")
    client = sdk(gateway, key)
    tag = marker()
    with pytest.raises(openai.InternalServerError) as failed:
        client.chat.completions.create(model="gpt-test", max_tokens=10, messages=[{"role": "user", "content": f"{tag} !status=500"}])
    assert failed.value.status_code == 502
    with pytest.raises(openai.BadRequestError) as rejected:
        client.chat.completions.create(model="gpt-test", max_tokens=10, messages=[{"role": "user", "content": f"{tag} !status=400"}])
    assert "rejected" in rejected.value.message
    rescued = client.chat.completions.create(
        model="gpt-fallback", max_tokens=10, messages=[{"role": "user", "content": f"{tag} !status=503 !fail-on=openai"}],
    )
    assert rescued.choices[0].message.content
    assert [r.provider for r in gateway.fake.requests_for(f"{tag} !status=503")] == ["openai", "backup"]
    me = gateway.settled(token, 3)
    backup = gateway.fake.requests_for(f"{tag} !status=503")[-1]
    assert Decimal(me["usedQuota"]) == openai_cost(backup.usage)
    statuses = sorted((log["status"], log["provider"], log["cost"]) for log in logs(gateway, token, 3))
    assert statuses == [("error", "openai", "0"), ("error", "openai", "0"), ("success", "backup", str(openai_cost(backup.usage)))]


def test_cookies_a_provider_sets_are_never_sent_back_on_anyone_s_call(gateway: Gateway, unique: str) -> None:
    # Providers set cookies (Cloudflare's) on every answer; a gateway that kept them would
    # send one user's provider session along with every other user's calls. The backup
    # provider is reached by host name: cookies set by a bare IP address are never kept.
    tag = marker()
    for owner in ("first", "second"):
        _, key, _ = gateway.funded(f"{unique}{owner}", "100")
        sdk(gateway, key).chat.completions.create(
            model="gpt-fallback", max_tokens=10,
            messages=[{"role": "user", "content": f"{tag} {owner} !status=503 !fail-on=openai"}],
        )
    answered = [r for r in gateway.fake.requests_for(tag) if r.provider == "backup"]
    assert len(answered) == 2
    assert [r.headers.get("Cookie") for r in answered] == [None, None]


def test_a_stream_cut_midway_raises_in_the_sdk_and_bills_what_was_delivered(gateway: Gateway, unique: str) -> None:
    token, key, _ = gateway.funded(unique, "100")
    for directive in ("!drop", "!midstream-error=nul", "!garbage", "!badshape"):
        tag = marker()
        received = []
        with pytest.raises(openai.APIError):
            for chunk in sdk(gateway, key).chat.completions.create(
                model="gpt-test", max_tokens=50, stream=True,
                messages=[{"role": "user", "content": f"{tag} {directive} !words=6"}],
            ):
                received.append(chunk)
        assert any(c.choices and c.choices[0].delta.content for c in received)
    entries = logs(gateway, token, 4)
    assert {e["status"] for e in entries} == {"error"}
    assert all(e["completionTokens"] > 0 and e["usageSource"] == "estimated" for e in entries), [(e["completionTokens"], e["usageSource"], e["promptTokens"]) for e in entries]
    assert all(Decimal(e["cost"]) > 0 for e in entries)
    assert Decimal(gateway.me(token)["usedQuota"]) == sum(Decimal(e["cost"]) for e in entries)


def test_a_client_that_leaves_cancels_the_upstream_and_pays_for_what_it_got(gateway: Gateway, unique: str) -> None:
    token, key, _ = gateway.funded(unique, "100")
    tag = marker()
    body = {"model": "gpt-test", "max_tokens": 500, "stream": True,
            "messages": [{"role": "user", "content": f"{tag} !words=400 !delay=10"}]}
    with httpx.Client(base_url=gateway.url, timeout=30) as http, http.stream(
        "POST", "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}
    ) as response:
        seen = 0
        for line in response.iter_lines():
            seen += line.startswith("data: {")
            if seen >= 20:
                break
    (entry,) = logs(gateway, token, 1)
    assert entry["status"] == "client_aborted" and entry["usageSource"] == "estimated"
    assert 10 <= entry["completionTokens"] < 400
    wait_until(lambda: gateway.fake.requests_for(tag)[0].aborted)


def test_models_lists_only_what_the_key_may_use(gateway: Gateway, unique: str) -> None:
    token, _, user = gateway.funded(unique, "1")
    gateway.entitle(user["id"], 1)
    narrow, _ = gateway.key(token, name="narrow", models=["gpt-test"])
    planned, _ = gateway.key(token, name="planned", planId=1)
    gateway.entitle(user["id"])  # no plan held: a key made without one has none
    wide, _ = gateway.key(token, name="wide")
    assert [m.id for m in sdk(gateway, narrow).models.list()] == ["gpt-test"]
    assert sorted(m.id for m in sdk(gateway, planned).models.list()) == ["claude-test", "gpt-test"]
    everything = {m.id for m in sdk(gateway, wide).models.list()}
    assert {"gpt-test", "claude-test", "gpt-fallback", "claude-sonnet-4-20250514"} <= everything
    listing = httpx.get(f"{gateway.url}/v1/models", headers={"x-api-key": narrow}).json()
    assert listing == {"object": "list", "data": [{"id": "gpt-test", "object": "model", "created": 1700000000, "owned_by": "tokensea"}]}


def test_a_plan_multiplier_applies_and_usage_sums_exactly(gateway: Gateway, unique: str) -> None:
    token, key, _ = gateway.funded(unique, "100", planId=1)
    tag = marker()
    client = sdk(gateway, key)
    for n in range(3):
        client.chat.completions.create(model="gpt-test", max_tokens=20, messages=[{"role": "user", "content": f"{tag} {n} !words={n + 3}"}])
    list(client.chat.completions.create(model="gpt-test", max_tokens=20, stream=True, messages=[{"role": "user", "content": f"{tag} s"}]))
    expected = sum(openai_cost(r.usage, multiplier="0.5") for r in gateway.fake.requests_for(tag))
    assert Decimal(gateway.settled(token, 4)["usedQuota"]) == expected
    with gateway.client(token) as http:
        stats = http.get("/api/usage/stats", params={"period": "24h"}).json()
        assert stats["totalRequests"] == 4 and Decimal(stats["totalCost"]) == expected
        assert stats["modelBreakdown"][0]["model"] == "gpt-test"
        assert http.get("/api/usage/stats", params={"period": "7d"}).json()["totalCost"] == stats["totalCost"]
        assert http.get("/api/usage/stats", params={"period": "1y"}).status_code == 400


def test_a_disabled_key_stops_on_every_worker_within_a_second(gateway: Gateway, unique: str) -> None:
    token, key, _ = gateway.funded(unique, "100")
    client = sdk(gateway, key)
    ask = {"model": "gpt-test", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    for _ in range(4):  # warm both workers' caches
        client.chat.completions.create(**ask)
    with gateway.client(token) as http:
        key_id = http.get("/api/tokens").json()["items"][0]["id"]
        assert http.patch(f"/api/tokens/{key_id}", json={"status": "disabled"}).status_code == 200
    import time

    time.sleep(1.0)
    for _ in range(6):
        with pytest.raises(openai.PermissionDeniedError):
            client.chat.completions.create(**ask)
