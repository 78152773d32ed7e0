"""What operators read: /metrics summed across the workers, /readyz, on both databases."""

from __future__ import annotations

import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from prometheus_client.mmap_dict import MmapedDict

from tests.gateway import Gateway, wait_until


def samples(gateway: Gateway) -> dict[str, float]:
    """Every sample of the exposition, keyed by its name and labels as printed."""
    text = httpx.get(f"{gateway.url}/metrics", timeout=10).text
    found = {}
    for line in text.splitlines():
        match = re.fullmatch(r"([a-z_]+(?:\{[^}]*\})?) ([0-9.e+-]+)", line)
        if match:
            found[match.group(1)] = float(match.group(2))
    return found


def value(found: dict[str, float], name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for key, number in found.items():
        metric, _, rest = key.partition("{")
        if metric == name and all(f'{k}="{v}"' in rest for k, v in labels.items()):
            total += number
    return total


def answered_by_each_worker(gateway: Gateway) -> dict[str, float]:
    """Chat calls answered 200, per worker process, from each process's own metrics file."""
    counts = {}
    for path in Path(gateway.env["PROMETHEUS_MULTIPROC_DIR"]).glob("counter_*.db"):
        counts[path.name] = sum(
            value for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path))
            if key.startswith('["tokensea_requests"') and '"v1/chat/completions"' in key and '"200"' in key
        )
    return counts


def test_metrics_count_every_call_across_both_workers(gateway: Gateway, unique: str) -> None:
    _, key, _ = gateway.funded(unique, "1000")
    model = "gpt-test"
    before, before_by_worker = samples(gateway), answered_by_each_worker(gateway)

    def call(_: int) -> int:
        body = {"model": model, "max_tokens": 10, "messages": [{"role": "user", "content": f"!slow=0.03 {uuid.uuid4().hex}"}]}
        return httpx.post(f"{gateway.url}/v1/chat/completions", json=body, timeout=30,
                          headers={"authorization": f"Bearer {key}"}).status_code

    calls = 0
    with ThreadPoolExecutor(8) as pool:
        for _ in range(10):  # concurrent fresh connections, until both workers have answered some
            assert set(pool.map(call, range(8))) == {200}
            calls += 8
            answering = {name for name, count in answered_by_each_worker(gateway).items()
                         if count > before_by_worker.get(name, 0)}
            if len(answering) >= 2:
                break
    assert len(answering) >= 2, "one worker answered every call"

    def counted() -> dict[str, float] | None:
        found = samples(gateway)
        done = value(found, "tokensea_requests_total", route="v1/chat/completions", model=model, status="200")
        started = value(before, "tokensea_requests_total", route="v1/chat/completions", model=model, status="200")
        return found if done - started == calls else None

    after = wait_until(counted)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("tokensea_upstream_first_byte_seconds_count", provider="openai") == calls
    assert grew("tokensea_upstream_seconds_count", provider="openai") == calls
    assert grew("tokensea_tokens_total", model=model, kind="output") == 5 * calls  # the fake's five words
    assert grew("tokensea_cost_cents_total", model=model) > 0
    assert grew("tokensea_ledger_batch_size_sum", lane="holds") >= calls
    assert grew("tokensea_ledger_batch_size_sum", lane="events") >= calls
    assert grew("tokensea_ledger_commit_seconds_count", lane="events") >= 1
    assert value(after, "tokensea_projection_lag_seconds") >= 0


def test_readyz_reports_the_database_and_each_projection(gateway: Gateway) -> None:
    answer = httpx.get(f"{gateway.url}/readyz", timeout=10)
    assert answer.status_code == 200
    report = answer.json()
    assert report["status"] == "ok" and report["database"] == "ok"
    assert {p["name"] for p in report["projections"]} == {"balances", "daily_usage", "hourly_usage", "request_logs"}
