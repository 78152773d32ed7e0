"""Concurrent relayed calls, then the auditor's tools: logs and stats add up exactly,
verify agrees, export lists the events in order, a rebuild changes nothing."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

from tests.edge.billing import anthropic_cost, openai_cost
from tests.edge.test_anthropic_relay import claude
from tests.edge.test_openai_relay import logs, sdk
from tests.gateway import Gateway, wait_until


def test_concurrent_calls_add_up_and_the_audit_agrees(gateway: Gateway, unique: str) -> None:
    token, key, user = gateway.funded(unique, "1000")
    tag = "m" + uuid.uuid4().hex[:10]

    def call(n: int) -> None:
        text = f"{tag} {n} !words={n % 7 + 1}" + (" !cache=500" if n % 5 == 0 else "")
        if n % 4 == 0:
            claude(gateway, key).messages.create(model="claude-test", max_tokens=20, messages=[{"role": "user", "content": text}])
        elif n % 4 == 1:
            with claude(gateway, key).messages.stream(model="gpt-test", max_tokens=20,
                                                      messages=[{"role": "user", "content": text}]) as stream:
                stream.get_final_message()
        elif n % 4 == 2:
            list(sdk(gateway, key).chat.completions.create(model="claude-test", max_tokens=20, stream=True,
                                                           messages=[{"role": "user", "content": text}]))
        else:
            sdk(gateway, key).chat.completions.create(model="gpt-test", max_tokens=20,
                                                      messages=[{"role": "user", "content": text}])

    with ThreadPoolExecutor(12) as pool:
        list(pool.map(call, range(48)))
    records = gateway.fake.requests_for(tag)
    assert len(records) == 48
    expected = sum(
        (anthropic_cost(r.usage) if r.provider == "anthropic" else openai_cost(r.usage) for r in records), Decimal(0)
    )
    me = gateway.settled(token, 48)
    assert Decimal(me["usedQuota"]) == expected
    entries = logs(gateway, token, 48)
    assert sum(Decimal(e["cost"]) for e in entries) == expected
    assert len({e["requestId"] for e in entries}) == 48
    with gateway.client(token) as http:
        stats = http.get("/api/usage/stats", params={"period": "30d"}).json()
    assert stats["totalRequests"] == 48 and Decimal(stats["totalCost"]) == expected
    assert sum(Decimal(d["cost"]) for d in stats["dailyBreakdown"]) == expected
    assert {m["model"] for m in stats["modelBreakdown"]} == {"gpt-test", "claude-test"}
    assert sum(m["requestCount"] for m in stats["modelBreakdown"]) == 48
    assert sum(m["promptTokens"] for m in stats["modelBreakdown"]) == sum(e["promptTokens"] for e in entries)

    verified = gateway.cli("ledger", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    rebuilt = gateway.cli("projections", "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert json.loads(rebuilt.stdout)["events"] > 48
    assert gateway.cli("ledger", "verify").returncode == 0
    assert Decimal(gateway.me(token)["usedQuota"]) == expected
    status = [json.loads(line) for line in gateway.cli("projections", "status").stdout.splitlines()]
    assert {s["projection"] for s in status} == {"balances", "request_logs", "daily_usage", "hourly_usage"}
    wait_until(lambda: all(s["eventsBehind"] == 0 for s in
                           (json.loads(line) for line in gateway.cli("projections", "status").stdout.splitlines())))

    exported = [json.loads(line) for line in gateway.cli("ledger", "export").stdout.splitlines()]
    ids = [e["id"] for e in exported]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    mine = [e for e in exported if user["id"] in (e.get("aggregateId"), e.get("user_id"))]
    topics = [e["topic"] for e in mine]
    assert topics[0] == "tokensea.UserRegistered"
    assert topics.index("tokensea.QuotaGranted") < topics.index("tokensea.KeyCreated") < topics.index("tokensea.TokensConsumed")
    assert not any("password_hash" in e for e in exported)
    charged = [e for e in exported if e["topic"] == "tokensea.TokensConsumed" and e["user_id"] == user["id"]]
    assert sum(Decimal(e["cost"]) for e in charged) == expected
    since = gateway.cli("ledger", "export", "--since", str(ids[-5])).stdout.splitlines()
    assert [json.loads(line)["id"] for line in since] == ids[-4:]
    # The chain of real traffic (two workers, streams, invites) audits offline.
    audited = gateway.cli("ledger", "audit", "-", stdin="\n".join(json.dumps(e) for e in exported))
    assert audited.returncode == 0 and "chain unbroken from the genesis" in audited.stderr, audited.stdout
    rows = [json.loads(line) for line in audited.stdout.splitlines()]
    assert next(r for r in rows if r.get("user") == user["id"] and "key" not in r)["requests"] == len(charged)
