"""kill -9 of the whole gateway under load, on PostgreSQL, then a restart: no charge is
lost, none is doubled, every answer a client received whole is billed as a success."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import httpx
import pytest

from ledger import Database
from ledger.log import EventLog
from ledger.replay import events
from tests.fakes.upstream import FakeUpstream
from tests.gateway import Gateway, start, wait_until

pytestmark = pytest.mark.slow

FAST_RECOVERY = """
[ledger]
recovery_stale_seconds = 1
recovery_grace_seconds = 1
"""


def _load(gateway: Gateway, key: str, tag: str, stop: threading.Event, successes: set[str], lock: threading.Lock,
          worker: int) -> None:
    with httpx.Client(base_url=gateway.url, headers={"authorization": f"Bearer {key}"}, timeout=30) as http:
        number = 0
        while not stop.is_set():
            number += 1
            text = f"{tag} {worker}-{number} !words=20 !delay=15"
            body = {"model": "gpt-test", "max_tokens": 50, "messages": [{"role": "user", "content": text}]}
            try:
                if number % 2:
                    with http.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as response:
                        request_id = response.headers.get("x-request-id")
                        done = any(line == "data: [DONE]" for line in response.iter_lines())
                else:
                    response = http.post("/v1/chat/completions", json=body)
                    request_id = response.headers.get("x-request-id")
                    done = response.status_code == 200 and response.json()["choices"][0]["message"]["content"]
            except httpx.HTTPError:
                continue  # the gateway died under this request
            if done and request_id:
                with lock:
                    successes.add(request_id)


def test_kill_9_under_load_loses_and_doubles_no_charge(fake: FakeUpstream, tmp_path: Path, schema_url: str) -> None:
    first = start(schema_url, fake, tmp_path / "first", workers=2, extra=FAST_RECOVERY)
    token, key, _ = first.funded("chaos", "1000000")
    tag = "m" + uuid.uuid4().hex[:10]
    stop, lock, successes = threading.Event(), threading.Lock(), set[str]()
    clients = [threading.Thread(target=_load, args=(first, key, tag, stop, successes, lock, n)) for n in range(16)]
    for client in clients:
        client.start()
    wait_until(lambda: len(successes) >= 20, timeout=60)
    first.kill9()
    stop.set()
    for client in clients:
        client.join(60)
    reached = {
        next(v for k, v in record.headers.items() if k.lower() == "x-tokensea-request-id")
        for record in fake.requests_for(tag)
    }
    assert len(reached) > len(successes) >= 20  # some were cut off in flight

    second = start(schema_url, fake, tmp_path / "second", workers=2, extra=FAST_RECOVERY)
    try:
        db = Database.from_url(schema_url)
        log = EventLog(db)

        def holds_left() -> int:
            conn = db.connect()
            try:
                return int(conn.execute("SELECT COUNT(*) AS n FROM ts_holds").fetchone()["n"])
            finally:
                conn.close()

        wait_until(lambda: holds_left() == 0, timeout=60, interval=0.5)
        charges: dict[str, list[str]] = {}
        for _, event in events(log.app):
            if hasattr(event, "request_id"):
                charges.setdefault(event.request_id, []).append(event.status)
        log.close()
        assert reached <= set(charges), f"{len(reached - set(charges))} requests reached the upstream unbilled"
        assert all(len(statuses) == 1 for statuses in charges.values()), "a request was charged twice"
        assert all(charges[request_id] == ["success"] for request_id in successes)
        assert "interrupted" in {s for statuses in charges.values() for s in statuses}
        verified = wait_until(lambda: (run := second.cli("ledger", "verify")).returncode == 0 and run, timeout=30)
        assert "agrees" in verified.stderr
        assert second.me(token)["requestCount"] == len(charges)
        # The chain is unbroken across the crash: nothing half-appended, nothing out of order.
        audited = second.cli("ledger", "audit", "-", stdin=second.cli("ledger", "export").stdout)
        assert audited.returncode == 0 and "chain unbroken from the genesis" in audited.stderr, audited.stdout
    finally:
        second.stop()
