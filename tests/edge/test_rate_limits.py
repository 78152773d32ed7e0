"""Rate limits end to end, with 2 workers on both databases: a plan's requests per minute,
calls in flight and tokens per minute hold across the workers; a call over a limit gets
429 in its protocol's shape with Retry-After, never reaches the provider and is never
charged; an admin's limit on a user and an owner's on a key apply too."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.conftest import fresh_database
from tests.fakes.upstream import FakeUpstream
from tests.gateway import Gateway, start

PLANS = """
[[plans]]
id = 10
name = "Ten a minute"
models = ["gpt-test", "claude-test"]
rpm = 10

[[plans]]
id = 11
name = "Two at once"
models = ["gpt-test"]
max_concurrency = 2

[[plans]]
id = 12
name = "A thousand tokens"
models = ["gpt-test"]
tpm = 1000
"""


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def limited(request: pytest.FixtureRequest, fake: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    directory = tmp_path_factory.mktemp(f"limits-{request.param}")
    with fresh_database(request.param, directory) as url:
        running = start(url, fake, directory, workers=2, extra=PLANS)
        try:
            yield running
        finally:
            running.stop()


def _keyed(gateway: Gateway, plan: int | None = None, **fields: Any) -> tuple[str, str, dict[str, Any]]:
    name = "u" + uuid.uuid4().hex[:12]
    token, key, user = gateway.funded(name, "1000")
    if plan is not None:
        gateway.entitle(user["id"], plan)
        key, _ = gateway.key(token, planId=plan, **fields)
    return token, key, user


def _post(gateway: Gateway, key: str, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{gateway.url}{path}", json=body, timeout=60,
                      headers={"authorization": f"Bearer {key}", "anthropic-version": "2023-06-01"})


def _chat(text: str, max_tokens: int = 10) -> dict[str, Any]:
    return {"model": "gpt-test", "max_tokens": max_tokens, "messages": [{"role": "user", "content": text}]}


def test_rpm_admits_exactly_a_minutes_worth_across_both_workers(limited: Gateway) -> None:
    token, key, _ = _keyed(limited, plan=10)
    tag = "rpm" + uuid.uuid4().hex[:8]
    with ThreadPoolExecutor(40) as pool:
        answers = list(pool.map(lambda n: _post(limited, key, "/v1/chat/completions", _chat(f"{tag} {n}")), range(40)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * 10 + [429] * 30
    refused = next(a for a in answers if a.status_code == 429)
    assert refused.json()["error"]["code"] == "rate_limit_exceeded" and int(refused.headers["retry-after"]) >= 1
    assert len(limited.fake.requests_for(tag)) == 10  # refused calls never reached the provider
    assert limited.settled(token, 10)["requestCount"] == 10  # ...and were never charged
    claude = _post(limited, key, "/v1/messages",
                   {"model": "claude-test", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})
    assert claude.status_code == 429 and claude.json()["error"]["type"] == "rate_limit_error"  # Anthropic's shape


def test_no_more_calls_in_flight_than_the_plan_allows(limited: Gateway) -> None:
    _, key, _ = _keyed(limited, plan=11)
    tag = "conc" + uuid.uuid4().hex[:8]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda n: _post(limited, key, "/v1/chat/completions", _chat(f"{tag} {n} !slow=0.5")),
                                range(8)))
    assert {a.status_code for a in answers} <= {200, 429} and 2 <= sum(a.status_code == 200 for a in answers) < 8
    assert limited.fake.most_at_once(tag) == 2


def test_tokens_count_at_the_bound_and_are_corrected_by_the_charge(limited: Gateway) -> None:
    _, key, _ = _keyed(limited, plan=12)
    first = _post(limited, key, "/v1/chat/completions", _chat("short !words=3", max_tokens=700))
    assert first.status_code == 200  # counted ~770 tokens at admission, used ~15
    second = _post(limited, key, "/v1/chat/completions", _chat("short again !words=3", max_tokens=700))
    assert second.status_code == 200, second.text  # room given back by the first one's charge
    too_big = _post(limited, key, "/v1/chat/completions", _chat("hi", max_tokens=5000))
    assert too_big.status_code == 429 and "whole tokens-per-minute" in too_big.json()["error"]["message"]
    assert "retry-after" not in too_big.headers
    unbounded = _post(limited, key, "/v1/chat/completions", {k: v for k, v in _chat("!words=2").items() if k != "max_tokens"})
    assert unbounded.status_code == 200  # the limit it gets is lowered to the window's room
    sent = limited.fake.requests_for("!words=2")[-1].body
    assert 0 < int(sent.get("max_completion_tokens") or sent["max_tokens"]) < 1000


def test_an_admins_limit_on_a_user_and_an_owners_on_a_key(limited: Gateway) -> None:
    token, key, user = _keyed(limited)
    with limited.client(limited.admin) as http:
        answer = http.patch(f"/api/admin/users/{user['id']}", json={"limits": {"rpm": 2, "tpm": None, "maxConcurrency": None}})
    assert answer.status_code == 200 and answer.json()["limits"]["rpm"] == 2
    assert [_post(limited, key, "/v1/chat/completions", _chat("a")).status_code for _ in range(3)] == [200, 200, 429]
    other_token, other_key, other = _keyed(limited, plan=10)
    with limited.client(other_token) as http:
        keys = http.get("/api/tokens").json()["items"]
        limited_key = next(k for k in keys if k["planId"] == 10)
        over = http.patch(f"/api/tokens/{limited_key['id']}", json={"limits": {"rpm": 50}})
        assert over.status_code == 400 and "allows at most 10" in over.json()["error"]["message"]
        under = http.patch(f"/api/tokens/{limited_key['id']}", json={"limits": {"rpm": 1}})
        assert under.status_code == 200 and under.json()["limits"] == {"rpm": 1, "tpm": None, "maxConcurrency": None}
        assert http.patch(f"/api/tokens/{limited_key['id']}", json={"limits": {"rpm": 0}}).status_code == 400
        assert http.patch(f"/api/tokens/{limited_key['id']}", json={"limits": {"rpm": "5"}}).status_code == 400
    assert [_post(limited, other_key, "/v1/chat/completions", _chat("b")).status_code for _ in range(2)] == [200, 429]
    with limited.client(token) as http:  # a non-admin cannot set anyone's user limits
        assert http.patch(f"/api/admin/users/{other['id']}", json={"limits": {"rpm": 1000}}).status_code == 403


