"""A provider's rate limit reaches the client as a 429 in its own protocol, with the
provider's Retry-After, once every route has been tried; before (issue #20) it was a 502,
which clients do not read as "wait and retry"."""

from __future__ import annotations

import uuid

import anthropic
import httpx
import openai
import pytest

from edge.relay.upstream import retry_after
from tests.edge.test_anthropic_relay import claude
from tests.edge.test_openai_relay import logs, sdk
from tests.gateway import Gateway


def test_openai_clients_get_429_with_retry_after(gateway: Gateway, unique: str) -> None:
    token, key, _ = gateway.funded(unique, "100")
    with pytest.raises(openai.RateLimitError) as limited:
        sdk(gateway, key).chat.completions.create(
            model="gpt-test", max_tokens=10, messages=[{"role": "user", "content": "!status=429 !retry-after=17"}])
    assert limited.value.status_code == 429
    assert limited.value.response.headers["retry-after"] == "17"
    assert limited.value.body["type"] == "rate_limit_error"  # the SDK hands over the "error" object
    streamed = httpx.post(f"{gateway.url}/v1/chat/completions", headers={"authorization": f"Bearer {key}"}, timeout=30,
                          json={"model": "gpt-test", "max_tokens": 10, "stream": True,
                                "messages": [{"role": "user", "content": "!status=429"}]})
    assert streamed.status_code == 429 and "retry-after" not in streamed.headers  # none was given
    assert streamed.json()["error"]["type"] == "rate_limit_error"
    entries = logs(gateway, token, 2)
    assert [(e["status"], e["cost"]) for e in entries] == [("error", "0")] * 2  # never charged


def test_anthropic_clients_get_429_with_retry_after(gateway: Gateway, unique: str) -> None:
    _, key, _ = gateway.funded(unique, "100")
    with pytest.raises(anthropic.RateLimitError) as limited:
        claude(gateway, key).messages.create(
            model="claude-test", max_tokens=10, messages=[{"role": "user", "content": "!status=429 !retry-after=3"}])
    assert limited.value.response.headers["retry-after"] == "3"
    assert limited.value.body == {"type": "error", "error": {"type": "rate_limit_error",
                                                             "message": limited.value.body["error"]["message"]}}


def test_the_fallback_route_is_tried_first(gateway: Gateway, unique: str) -> None:
    _, key, _ = gateway.funded(unique, "100")
    tag = uuid.uuid4().hex
    # Only the primary limits: the backup answers.
    ok = sdk(gateway, key).chat.completions.create(
        model="gpt-fallback", max_tokens=10,
        messages=[{"role": "user", "content": f"{tag} !status=429 !retry-after=9 !fail-on=openai"}])
    assert ok.choices[0].message.content
    assert [r.provider for r in gateway.fake.requests_for(tag)] == ["openai", "backup"]
    # Both limit: 429, with the last route's Retry-After, and nothing charged.
    with pytest.raises(openai.RateLimitError) as limited:
        sdk(gateway, key).chat.completions.create(
            model="gpt-fallback", max_tokens=10, messages=[{"role": "user", "content": f"{tag}b !status=429 !retry-after=9"}])
    assert limited.value.response.headers["retry-after"] == "9"
    assert [r.provider for r in gateway.fake.requests_for(f"{tag}b")] == ["openai", "backup"]


def test_unit_retry_after_reads_seconds_and_dates_and_refuses_the_rest() -> None:
    assert retry_after("20") == 20
    assert retry_after(" 5 ") == 5
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0  # already past
    assert retry_after("99999999999") == 86_400
    for nonsense in (None, "", "-5", "soon", "1.5", "\u0665", "Wed, 21 Oct 2015 07:28:00"):
        assert retry_after(nonsense) is None
