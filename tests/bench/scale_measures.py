"""What the scale benchmark (``tests.bench.ledger_scale``) measures on a filled ledger:
replays from a checkpoint and from genesis, export and offline audit, and the usage API
over HTTP."""

from __future__ import annotations

import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from projections.rebuild import rebuild
from projections.scheduler import rebuild_from_checkpoint
from projections.store import ALL
from projections.verify import audit
from tests.bench.scale_ledger import PASSWORD, Bench, log, peak_rss_mb

SAMPLES = 200  # HTTP requests per measure


DEEP_PAGE = 10_000


PAGE_SIZE = 20


CONFIG = """
[server]
login_max_failures_per_address = 100000

[projections]
max_lag_seconds = 3600
"""


def measure_replays(bench: Bench, runs: int) -> dict[str, Any]:
    """After EXTRA events past the latest checkpoint: rebuild and audit from it, and from genesis."""
    head = bench.head()
    found: dict[str, Any] = {"events": head}
    timings: dict[str, list[float]] = {"rebuild_from_checkpoint": [], "audit_from_checkpoint": []}
    for _ in range(runs):
        started = time.perf_counter()
        base, replayed = rebuild_from_checkpoint(bench.db, bench.ledger.log)
        timings["rebuild_from_checkpoint"].append(time.perf_counter() - started)
        assert base is not None, "no checkpoint to rebuild from"
        found["rebuild_from_checkpoint_events"] = replayed
        started = time.perf_counter()
        report = audit(bench.db, bench.ledger.log)
        timings["audit_from_checkpoint"].append(time.perf_counter() - started)
        assert not report.lines, report.lines[:20]
        assert report.base is not None
        found["audit_from_checkpoint_events"] = report.last - report.first + 1
    for name, values in timings.items():
        found[name] = statistics.median(values)
        found[f"{name}_runs"] = values
    started = time.perf_counter()
    found["rebuild_genesis_events"] = rebuild(bench.db, bench.ledger.log, ALL, base=None)
    found["rebuild_genesis"] = time.perf_counter() - started
    log(f"  rebuild from genesis: {found['rebuild_genesis']:.1f} s, peak RSS {peak_rss_mb():,.0f} MB")
    started = time.perf_counter()
    report = audit(bench.db, bench.ledger.log, full=True)
    found["audit_full"] = time.perf_counter() - started
    assert not report.lines, report.lines[:20]
    found["audit_full_events"] = report.last - report.first + 1
    found["peak_rss_mb"] = peak_rss_mb()
    log(f"  audit --full: {found['audit_full']:.1f} s, peak RSS {found['peak_rss_mb']:,.0f} MB")
    return found


def cli_has(*words: str) -> bool:
    answer = subprocess.run([sys.executable, "-m", "edge.cli", *words, "--help"], capture_output=True, text=True,
                            check=False)
    return answer.returncode == 0


def measure_export_audit(bench: Bench) -> dict[str, Any]:
    """``ledger export | ledger audit -`` over the whole ledger, as an auditor runs them."""
    if not cli_has("ledger", "audit"):
        return {"skipped": "this build's CLI has no `ledger audit` (branch chain not merged into main yet)"}
    env = {**os.environ, "TOKENSEA_DATABASE_URL": bench.url}
    env.pop("TOKENSEA_CONFIG", None)
    events = bench.head()
    with tempfile.TemporaryDirectory() as directory:
        exported = Path(directory) / "ledger.jsonl"
        started = time.perf_counter()
        with exported.open("wb") as out:
            subprocess.run([sys.executable, "-m", "edge.cli", "ledger", "export"], stdout=out, env=env, check=True)
        export_seconds = time.perf_counter() - started
        size = exported.stat().st_size
        started = time.perf_counter()
        with exported.open("rb") as source:
            answer = subprocess.run([sys.executable, "-m", "edge.cli", "ledger", "audit", "-"], stdin=source,
                                    capture_output=True, text=True, env=env, check=False)
        audit_seconds = time.perf_counter() - started
    assert answer.returncode == 0, answer.stdout[-2000:] + answer.stderr[-2000:]
    return {"events": events, "export_seconds": export_seconds, "export_bytes": size,
            "audit_seconds": audit_seconds, "audit_events_per_s": events / audit_seconds,
            "export_events_per_s": events / export_seconds}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def gateway(bench: Bench, directory: Path) -> Iterator[str]:
    """``tokensea serve`` on the bench's schema (no upstream is needed for these reads)."""
    config = directory / "tokensea.toml"
    config.write_text(CONFIG)
    port = free_port()
    env = {**os.environ, "TOKENSEA_DATABASE_URL": bench.url, "TOKENSEA_JWT_SECRET": "bench-" + "s" * 60,
           "PROMETHEUS_MULTIPROC_DIR": str(directory / f"metrics-{port}")}
    env.pop("TOKENSEA_CONFIG", None)
    output = (directory / f"gateway-{port}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "edge.cli", "--config", str(config), "serve", "--port", str(port), "--workers", "1"],
        stdout=output, stderr=subprocess.STDOUT, env=env, cwd=directory, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the gateway exited: {(directory / f'gateway-{port}.log').read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the gateway did not start within 120 s")
            time.sleep(0.2)
        yield url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        output.close()


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"p50_ms": statistics.median(ordered) * 1000,
            "p99_ms": ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)] * 1000,
            "n": len(ordered)}


def time_get(client: httpx.Client, path: str, samples: int) -> dict[str, float]:
    for _ in range(10):  # warm the connection, the caches and the plans
        assert client.get(path).status_code == 200
    taken = []
    for _ in range(samples):
        started = time.perf_counter()
        answer = client.get(path)
        taken.append(time.perf_counter() - started)
        assert answer.status_code == 200, answer.text[:500]
    return percentiles(taken)


def measure_http(bench: Bench, username: str, samples: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as directory, gateway(bench, Path(directory)) as url:
        with httpx.Client(base_url=url, timeout=120) as anonymous:
            answer = anonymous.post("/api/auth/login", json={"username": username, "password": PASSWORD})
            assert answer.status_code == 200, answer.text
            token = answer.json()["token"]
        with httpx.Client(base_url=url, timeout=120, headers={"authorization": f"Bearer {token}"}) as client:
            first = client.get("/api/usage/logs", params={"pageSize": PAGE_SIZE}).json()
            total = int(first["total"])
            last_page = max(1, math.ceil(total / PAGE_SIZE))
            found: dict[str, Any] = {"user": username, "user_log_rows": total,
                                     "user_log_rows_exact": first.get("totalIsExact", True)}
            found["stats_7d"] = time_get(client, "/api/usage/stats?period=7d", samples)
            found["stats_24h"] = time_get(client, "/api/usage/stats?period=24h", samples)
            found["stats_7d_requests"] = client.get("/api/usage/stats?period=7d").json()["totalRequests"]
            found["stats_24h_requests"] = client.get("/api/usage/stats?period=24h").json()["totalRequests"]
            found["logs_first_page"] = time_get(client, f"/api/usage/logs?pageSize={PAGE_SIZE}", samples)
            if "nextCursor" in first:  # keyset: walk to the deep page, then time that page's request
                page, cursor = 1, first["nextCursor"]
                walk = time.perf_counter()
                while page < DEEP_PAGE - 1 and cursor:
                    following = client.get("/api/usage/logs", params={"pageSize": PAGE_SIZE, "cursor": cursor}).json()
                    if not following["nextCursor"]:
                        break  # ``cursor`` names the last page: time that one
                    cursor = following["nextCursor"]
                    page += 1
                found["deep_page"] = {"how": "keyset cursor", "page": page + 1,
                                      "walk_seconds": time.perf_counter() - walk}
                found["deep_page"].update(time_get(client, f"/api/usage/logs?pageSize={PAGE_SIZE}&cursor={cursor}",
                                                   samples))
                # The deepest page the offset path (kept for old clients) still serves.
                if not first.get("totalIsExact", True):
                    deepest = int(first["total"]) // PAGE_SIZE
                else:
                    deepest = last_page
                found["deepest_offset_page"] = {
                    "page": deepest, **time_get(client, f"/api/usage/logs?pageSize={PAGE_SIZE}&page={deepest}", samples)}
            else:
                page = min(DEEP_PAGE, last_page)
                found["deep_page"] = {"how": "page= (OFFSET): the API has no keyset cursor in this build",
                                      "page": page}
                found["deep_page"].update(time_get(client, f"/api/usage/logs?pageSize={PAGE_SIZE}&page={page}",
                                                   samples))
                if page != last_page:
                    found["last_page"] = {"page": last_page, **time_get(
                        client, f"/api/usage/logs?pageSize={PAGE_SIZE}&page={last_page}", samples)}
    return found
