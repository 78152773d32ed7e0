"""Upstream faults and a tiny balance under concurrency, on a 2-worker gateway:
the right client error, the right charge, and no reservation left behind."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import anthropic
import httpx
import openai
import pytest

from ledger import Database
from tests.conftest import fresh_database
from tests.edge.test_anthropic_relay import claude
from tests.edge.test_openai_relay import logs, sdk
from tests.fakes.upstream import FakeUpstream
from tests.gateway import Gateway, free_port, start, wait_until

pytestmark = pytest.mark.slow

FAULTY = """
[upstream]
first_byte_timeout = 1
idle_timeout = 1

[[providers]]
name = "dead"
protocol = "openai"
base_url = "http://127.0.0.1:{dead_port}/v1"
api_key_env = "TS_TEST_OPENAI_KEY"

[[models]]
id = "gpt-dead"
provider = "dead"
input = "100"
output = "300"

[[models]]
id = "tiny"
provider = "openai"
upstream_model = "gpt-upstream"
input = "0"
output = "1000000"
"""


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def gateway(request: pytest.FixtureRequest, fake: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """The shared gateway, with short upstream timeouts, a dead provider and a tiny-price model."""
    directory = tmp_path_factory.mktemp(f"faults-{request.param}")
    with fresh_database(request.param, directory) as url:
        running = start(url, fake, directory, workers=2, extra=FAULTY.format(dead_port=free_port()))
        try:
            yield running
        finally:
            running.stop()


def _holds(gateway: Gateway) -> tuple[int, Decimal]:
    db = Database.from_url(gateway.database_url)
    conn = db.connect()
    try:
        cur = conn.cursor()
        cur.execute("SELECT COUNT(*) AS n FROM ts_holds")
        count = int(cur.fetchone()["n"])
        cur.execute("SELECT held FROM ts_users")
        held = sum((Decimal(str(row["held"])) for row in cur.fetchall()), Decimal(0))
        cur.execute("SELECT released FROM ts_settled WHERE account_id IN (SELECT user_id FROM ts_users)")
        released = sum((Decimal(str(row["released"])) for row in cur.fetchall()), Decimal(0))
        return count, held - released  # the rows plus the charges not yet folded in
    finally:
        conn.close()


def test_each_fault_gets_the_right_error_and_the_right_charge(gateway: Gateway) -> None:
    token, key, _ = gateway.funded("faults", "100")
    client, claude_client = sdk(gateway, key), claude(gateway, key)
    ask = {"max_tokens": 20}
    with pytest.raises(openai.APIStatusError) as slow:
        client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "!slow=3"}], **ask)
    assert slow.value.status_code == 504
    with pytest.raises(anthropic.APIStatusError) as slow_claude:
        claude_client.messages.create(model="claude-test", messages=[{"role": "user", "content": "!slow=3"}], **ask)
    assert slow_claude.value.status_code == 504
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(model="gpt-dead", messages=[{"role": "user", "content": "hi"}], **ask)
    assert refused.value.status_code == 502 and refused.value.code == "upstream_unreachable"
    for status in (429, 500, 529):
        with pytest.raises(openai.APIStatusError) as failed:
            client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": f"!status={status}"}], **ask)
        assert failed.value.status_code == (429 if status == 429 else 502)  # a rate limit is passed on as one
    with pytest.raises(openai.APIError):  # the provider goes silent mid-stream: the idle timeout ends it
        for _ in client.chat.completions.create(model="gpt-test", stream=True,
                                                messages=[{"role": "user", "content": "!words=4 !delay=2500"}], **ask):
            pass
    with pytest.raises((anthropic.APIStatusError, anthropic.APIError)), claude_client.messages.stream(
        model="claude-test", messages=[{"role": "user", "content": "!words=6 !garbage"}], **ask
    ) as stream:
        for _ in stream.text_stream:
            pass
    entries = logs(gateway, token, 8)
    # Slow first byte (2), refused connection, 429/500/529, and the stream that went
    # silent before its first word: no completion was delivered, so nothing is charged.
    failed_before_output = [e for e in entries if e["completionTokens"] == 0]
    assert len(failed_before_output) == 7 and all(e["cost"] == "0" and e["status"] == "error" for e in failed_before_output)
    partial = [e for e in entries if e["completionTokens"] > 0]  # garbage after two words: billed for them
    assert len(partial) == 1 and all(e["status"] == "error" and Decimal(e["cost"]) > 0 for e in partial)
    assert Decimal(gateway.me(token)["usedQuota"]) == sum(Decimal(e["cost"]) for e in partial)
    assert _holds(gateway) == (0, Decimal(0))


def test_a_tiny_balance_under_concurrency_is_never_overdrawn(gateway: Gateway) -> None:
    token, key, _ = gateway.funded("tiny", "20")  # 20 cents; each call holds 5 and costs 3
    body = {"model": "tiny", "max_tokens": 5, "messages": [{"role": "user", "content": "!words=3"}]}

    def call(_: int) -> int:
        return httpx.post(f"{gateway.url}/v1/chat/completions", json=body, timeout=30,
                          headers={"authorization": f"Bearer {key}"}).status_code

    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(call, range(48)))
    assert set(statuses) <= {200, 402} and statuses.count(200) >= 4 and 402 in statuses
    me = gateway.settled(token, statuses.count(200))
    used = Decimal(me["usedQuota"])
    assert used <= Decimal(20)
    assert used == 3 * statuses.count(200)  # every success billed exactly, every refusal free
    assert me["requestCount"] == statuses.count(200)
    assert _holds(gateway) == (0, Decimal(0))
    wait_until(lambda: gateway.cli("ledger", "verify").returncode == 0)


def test_clients_that_give_up_at_any_moment_leave_no_reservation(gateway: Gateway) -> None:
    """Clients abandon their calls after a random fraction of a millisecond or more, so
    some leave during admission itself: every hold must still be released."""
    _, key, _ = gateway.funded("impatient", "100000")
    body = {"model": "gpt-test", "max_tokens": 5, "messages": [{"role": "user", "content": "!words=2 !delay=20"}]}

    def call(n: int) -> None:
        timeout = httpx.Timeout(connect=5, read=0.0002 * (n % 40 + 1), write=5, pool=5)
        with contextlib.suppress(httpx.TimeoutException):  # giving up is the point
            httpx.post(f"{gateway.url}/v1/chat/completions", json=body, timeout=timeout,
                       headers={"authorization": f"Bearer {key}"})

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(call, range(400)))
    assert wait_until(lambda: _holds(gateway) == (0, Decimal(0)), timeout=15)
