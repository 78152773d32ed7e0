"""PostgreSQL stops in the middle of traffic: model calls get 503 in their protocol's
shape, account reads degrade to clean 503s, and everything resumes by itself as soon as
PostgreSQL is back, without a restart."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from domain.money import Money
from ledger import Database, Hold, Ledger
from ledger.replay import replay
from tests.edge.test_openai_relay import logs
from tests.fakes.upstream import FakeUpstream
from tests.gateway import start, wait_until
from tests.ledger.helpers import charge, facts, new_key, register

pytestmark = pytest.mark.slow

def _cluster(action: str) -> None:
    """Stop, start or restart the local cluster (Debian's pg_ctlcluster), asked when used."""
    clusters = Path("/etc/postgresql")
    if not clusters.is_dir():
        pytest.skip("these tests stop and start a local PostgreSQL managed by Debian's pg_ctlcluster")
    version = sorted(path.name for path in clusters.iterdir())[0]
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action,
                    *(["-m", "fast"] if action == "stop" else [])], check=True, capture_output=True)


def _ready() -> bool:
    return subprocess.run(["pg_isready", "-h", "127.0.0.1", "-q"], check=False).returncode == 0


@pytest.fixture
def outage() -> Iterator[None]:
    yield
    if not _ready():  # whatever happened, leave PostgreSQL running for the rest of the suite
        _cluster("start")
        wait_until(_ready, timeout=30)


def test_fail_closed_then_recover_by_itself(fake: FakeUpstream, tmp_path: Path, schema_url: str, outage: None) -> None:
    gateway = start(schema_url, fake, tmp_path, workers=2)
    try:
        token, key, _ = gateway.funded("outage", "100")
        chat = {"model": "gpt-test", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
        message = {"model": "claude-test", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
        with httpx.Client(base_url=gateway.url, headers={"authorization": f"Bearer {key}"}, timeout=30) as http:
            assert http.post("/v1/chat/completions", json=chat).status_code == 200
            _cluster("stop")
            for _ in range(4):
                openai_shape = http.post("/v1/chat/completions", json=chat)
                assert openai_shape.status_code == 503
                assert openai_shape.json()["error"]["code"] == "ledger_unavailable"
                anthropic_shape = http.post("/v1/messages", json=message)
                assert anthropic_shape.status_code == 503
                assert anthropic_shape.json()["type"] == "error"
            with gateway.client(token) as account:
                profile = account.get("/api/user/self")
                assert profile.status_code == 503 and profile.json()["error"]["type"] == "ledger_unavailable"
            ready = httpx.get(f"{gateway.url}/readyz", timeout=10)
            assert ready.status_code == 503
            _cluster("start")
            wait_until(_ready, timeout=30)
            # Each worker's connections died with the server: the first call reconnects
            # (a hold or charge is resent once on a fresh connection), so none fails.
            assert http.post("/v1/chat/completions", json=chat).status_code == 200
            assert http.post("/v1/messages", json=message).status_code == 200
        me = gateway.settled(token, 3)
        entries = logs(gateway, token, me["requestCount"])
        paid = [e for e in entries if e["status"] == "success"]
        assert len(paid) == 3
        # Anything else reached a provider while the ledger was going away: recorded, at no charge.
        assert all(e["cost"] == "0" for e in entries if e["status"] != "success")
        assert Decimal(me["usedQuota"]) == sum(Decimal(e["cost"]) for e in paid)
        assert gateway.cli("ledger", "verify").returncode == 0
    finally:
        gateway.stop()


def test_an_event_loop_replaces_connections_that_died_without_failing_a_call(schema_url: str, outage: None) -> None:
    """PostgreSQL restarts between two model calls of one worker: the hold and the charge
    that find their kept connection dead are resent on a fresh one, once, and count once."""
    ledger = Ledger(Database.from_url(schema_url))
    try:
        alice = register(ledger, "alice", quota="100")
        key = new_key(ledger, alice)

        async def calls() -> list[bool]:
            settled = []
            for request_id in ("before", "after"):
                await ledger.aadmit(Hold(facts(request_id, alice, key), Money(1), ledger.instance_id))
                settled.append(await ledger.asettle(charge(request_id, alice, key, tokens=100, reserved="1")))
                if request_id == "before":
                    _cluster("restart")
                    wait_until(_ready, timeout=30)
            return settled

        assert asyncio.run(calls()) == [True, True]
        user = ledger.read(lambda q: q.user_by_id(alice))
        assert user["used"] == Decimal(2) and user["held"] == 0
        assert replay(ledger.app).users[alice].requests == 2
    finally:
        ledger.close()
