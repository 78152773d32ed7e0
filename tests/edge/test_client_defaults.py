"""What real clients send by default, through the official SDKs: no ``max_tokens``,
``response_format``, ``models.retrieve``, ``embeddings.create``, a system message in the
middle of an Anthropic conversation, Claude Code's extra fields, and the probe of ``/``."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest
from pydantic import BaseModel

from tests.conftest import fresh_database
from tests.edge.billing import GPT_TEST, MILLION, anthropic_cost, openai_cost
from tests.edge.test_anthropic_relay import claude
from tests.edge.test_openai_relay import TOOLS, sdk
from tests.fakes.upstream import FakeUpstream
from tests.gateway import Gateway, start

# (In [server]:) no console, so / is the JSON description. Models whose output limit is
# capped, one of them with the provider's own structured output.
EXTRA = """
console = false

[[models]]
id = "gpt-capped"
provider = "openai"
upstream_model = "gpt-upstream"
input = "100"
output = "300"
max_output_tokens = 2000

[[models]]
id = "claude-capped"
provider = "anthropic"
upstream_model = "claude-upstream"
input = "300"
output = "1500"
max_output_tokens = 2000
structured_output = true

[[models]]
id = "embed-test"
provider = "openai"
input = "2"
output = "0"
"""


@pytest.fixture(scope="module")
def gateway(fake: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """One database is enough here: these are protocol tests (admission on both databases,
    under concurrency, is in test_openai_relay.py)."""
    directory = tmp_path_factory.mktemp("defaults")
    with fresh_database("sqlite", directory) as url:
        running = start(url, fake, directory, workers=2, extra=EXTRA)
        try:
            yield running
        finally:
            running.stop()


def marker() -> str:
    return "m" + uuid.uuid4().hex[:10]


def cost_of(record: Any) -> Decimal:
    return anthropic_cost(record.usage) if record.provider == "anthropic" else openai_cost(record.usage)


def sent_limit(body: dict[str, Any]) -> int:
    return int(body.get("max_tokens") or body.get("max_completion_tokens") or body.get("max_output_tokens"))


@pytest.mark.parametrize("model", ["gpt-capped", "claude-capped"])
def test_the_openai_sdk_needs_no_max_tokens(gateway: Gateway, unique: str, model: str) -> None:
    """Plain, streamed and with tools: each call gets the model's maximum (the quota
    pays for it), which is what the provider is sent; a larger client limit is lowered."""
    token, key, _ = gateway.funded(unique, "1000")
    client = sdk(gateway, key)
    tag = marker()
    plain = client.chat.completions.create(model=model, messages=[{"role": "user", "content": f"{tag} plain"}])
    assert plain.choices[0].message.content == "w0 w1 w2 w3 w4"
    chunks = list(client.chat.completions.create(model=model, stream=True,
                                                 messages=[{"role": "user", "content": f"{tag} streamed"}]))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "w0 w1 w2 w3 w4"
    called = client.chat.completions.create(model=model, tools=TOOLS, messages=[{"role": "user", "content": f"{tag} !tool"}])
    assert called.choices[0].message.tool_calls[0].function.name == "get_weather"
    lowered = client.chat.completions.create(model=model, max_tokens=50_000, messages=[{"role": "user", "content": f"{tag} big"}])
    assert lowered.choices[0].message.content
    records = gateway.fake.requests_for(tag)
    assert [sent_limit(r.body) for r in records] == [2000] * 4
    if model == "gpt-capped":  # no limit sent: the newest field; a client's own field is kept, lowered
        assert [("max_completion_tokens" in r.body, "max_tokens" in r.body) for r in records] == [
            (True, False), (True, False), (True, False), (False, True)]
    me = gateway.settled(token, 4)
    assert Decimal(me["usedQuota"]) == sum(cost_of(r) for r in records)


def test_with_little_quota_the_limit_is_what_the_quota_pays_for(gateway: Gateway, unique: str) -> None:
    token, key, _ = gateway.funded(unique, "0.5")
    client = sdk(gateway, key)
    tag = marker()
    answer = client.chat.completions.create(model="gpt-capped", messages=[{"role": "user", "content": f"{tag} !words=3000"}])
    assert answer.choices[0].finish_reason == "length"  # a long answer ends at the limit the quota pays for
    (record,) = gateway.fake.requests_for(tag)
    limit = sent_limit(record.body)
    prompt_bound = len(json.dumps(record.body))  # about what the gateway bounded the prompt by
    assert 0 < limit < 2000
    assert limit * GPT_TEST[1] / MILLION <= Decimal("0.5")  # the output alone fits the quota
    assert (prompt_bound * GPT_TEST[0] + (limit + 200) * GPT_TEST[1]) / MILLION > Decimal("0.5")  # and is near its most
    me = gateway.settled(token, 1)
    assert Decimal(me["usedQuota"]) == openai_cost(record.usage) <= Decimal("0.5")
    with pytest.raises(openai.APIStatusError) as poor:  # not even one token is affordable now
        client.chat.completions.create(model="gpt-capped", messages=[{"role": "user", "content": "x " * 5000}])
    assert poor.value.status_code == 402


def test_response_format_on_a_claude_model(gateway: Gateway, unique: str) -> None:
    class City(BaseModel):
        city: str

    token, key, _ = gateway.funded(unique, "100")
    client = sdk(gateway, key)
    tag = marker()
    parsed = client.chat.completions.parse(model="claude-test", response_format=City,
                                           messages=[{"role": "user", "content": f"{tag} where?"}])
    assert parsed.choices[0].message.parsed == City(city="Paris") and parsed.choices[0].finish_reason == "stop"
    chunks = list(client.chat.completions.create(
        model="claude-test", stream=True, response_format={"type": "json_object"},
        messages=[{"role": "user", "content": f"{tag} streamed json"}]))
    assert json.loads("".join(c.choices[0].delta.content or "" for c in chunks if c.choices)) == {"city": "Paris"}
    native = client.chat.completions.parse(model="claude-capped", response_format=City, max_tokens=100,
                                           messages=[{"role": "user", "content": f"{tag} native"}])
    assert native.choices[0].message.content  # the provider's structured output answers in text
    forced, streamed, structured = (r.body for r in gateway.fake.requests_for(tag))
    assert forced["tool_choice"] == {"type": "tool", "name": "json_answer"}
    assert forced["tools"][0]["input_schema"]["properties"] == {"city": {"title": "City", "type": "string"}}
    assert streamed["tools"][0]["input_schema"] == {"type": "object", "additionalProperties": True}
    assert structured["output_config"]["format"]["type"] == "json_schema" and "tools" not in structured
    gateway.settled(token, 3)


def test_models_retrieve_embeddings_and_the_root(gateway: Gateway, unique: str) -> None:
    token, _, _ = gateway.funded(unique, "10")
    narrow, _ = gateway.key(token, name="narrow", models=["gpt-test", "embed-test"])
    client = sdk(gateway, narrow)
    assert client.models.retrieve("gpt-test").id == "gpt-test"
    for hidden in ("claude-test", "no-such-model"):
        with pytest.raises(openai.NotFoundError) as missing:
            client.models.retrieve(hidden)
        assert missing.value.code == "model_not_found"
    tag = marker()
    embedded = client.embeddings.create(model="embed-test", input=[f"{tag} one two", "three"])
    assert [round(v, 3) for v in embedded.data[1].embedding] == [0.5, 0.5, -0.125]
    (record,) = gateway.fake.requests_for(tag)
    assert record.body["model"] == "embed-test" and embedded.usage.prompt_tokens == record.usage["prompt_tokens"]
    with pytest.raises(openai.BadRequestError):
        sdk(gateway, gateway.key(token, name="wide")[0]).embeddings.create(model="claude-test", input="x")
    me = gateway.settled(token, 1)
    assert Decimal(me["usedQuota"]) == Decimal(record.usage["prompt_tokens"]) * 2 / MILLION  # the input price only
    assert httpx.head(f"{gateway.url}/").status_code == 200
    assert httpx.get(f"{gateway.url}/").json()["name"] == "TokenSea"


@pytest.mark.parametrize("model", ["claude-test", "gpt-test"])
def test_the_anthropic_sdk_with_what_claude_code_sends(gateway: Gateway, unique: str, model: str) -> None:
    """A system message among the turns, output_config, context_management and adaptive
    thinking: relayed as sent to Anthropic providers, translated for OpenAI ones."""
    token, key, _ = gateway.funded(unique, "100")
    tag = marker()
    with claude(gateway, key).messages.stream(
        model=model, max_tokens=1000,
        thinking={"type": "adaptive"}, output_config={"effort": "high"},
        extra_body={"context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]}},
        messages=[{"role": "user", "content": f"{tag} hi"}, {"role": "system", "content": "answer tersely"},  # type: ignore[list-item]
                  {"role": "user", "content": "go on"}],
    ) as stream:
        text = "".join(stream.text_stream)
    assert text == "w0 w1 w2 w3 w4"
    (record,) = gateway.fake.requests_for(tag)
    if model == "claude-test":
        assert [m["role"] for m in record.body["messages"]] == ["user", "system", "user"]
        assert record.body["thinking"] == {"type": "adaptive"} and record.body["output_config"] == {"effort": "high"}
        assert "context_management" in record.body
    else:
        assert record.body["messages"] == [{"role": "user", "content": f"{tag} hi"},
                                           {"role": "system", "content": "answer tersely"},
                                           {"role": "user", "content": "go on"}]
        assert not {"thinking", "output_config", "context_management", "reasoning_effort"} & set(record.body)
    assert Decimal(gateway.settled(token, 1)["usedQuota"]) == cost_of(record)
