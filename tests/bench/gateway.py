"""Side-by-side gateway benchmark: the mock upstream directly, TokenSea (PostgreSQL,
billing on), and LiteLLM's proxy (no database), the same load against each, in one run.

Run by hand, never in CI:

    python -m tests.bench.gateway [--workers 2] [--duration 15] [--runs 3] [--soak-minutes 10]

Load comes from ``wrk`` (C, multi-threaded) for throughput and for latency at one
connection, and from an open-loop generator (``tests.bench.load``: raw HTTP/1.1 on
keep-alive connections, about 50 µs of CPU per request) for the fixed 200 req/s and the
streams. The generator is measured against the mock directly as well, so what it adds
cancels out of every "added latency" figure, and its CPU share is printed. LiteLLM runs from ``.bench/litellm-venv``
(``litellm[proxy]==1.108.7``; the script writes its config), skipped if absent.
The run ends by checking that TokenSea billed exactly one success per successful answer.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import uvloop

from tests.bench import load

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / ".bench"
POSTGRES = os.environ.get("TOKENSEA_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
BODY = '{"model":"gpt-test","max_tokens":20,"messages":[{"role":"user","content":"Say hello in one short sentence."}]}'

CONFIG = """
[[providers]]
name = "mock"
protocol = "openai"
base_url = "{mock}/v1"
api_key_env = "MOCK_KEY"

[[models]]
id = "gpt-test"
provider = "mock"
input = "100"
output = "300"

[server]
access_log = {access_log}
"""

# LiteLLM's proxy with no database: a master key and one model on the mock.
LITELLM_CONFIG = """
model_list:
  - model_name: gpt-test
    litellm_params:
      model: openai/gpt-test
      api_base: os.environ/MOCK_BASE
      api_key: sk-mock
general_settings:
  master_key: sk-bench-master
litellm_settings:
  drop_params: true
"""


@dataclass
class Target:
    name: str
    url: str  # the chat completions URL
    headers: dict[str, str] = field(default_factory=dict)
    pids: list[int] = field(default_factory=list)  # processes whose memory to watch


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not come up")


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().split()
            except OSError:
                continue
            if int(stat[3]) == pid:
                found.append(int(entry.name))
    return found


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# -- load generators ----------------------------------------------------------------------

def wrk(target: Target, connections: int, seconds: int) -> dict[str, float]:
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    headers = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in {"content-type": "application/json", **target.headers}.items())
    script.write_text(f'wrk.method = "POST"\nwrk.body = [[{BODY}]]\n{headers}')
    threads = min(2, connections)
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "-s", str(script), "--latency", target.url],
                         capture_output=True, text=True, check=True).stdout
    script.unlink()

    def millis(label: str) -> float:
        match = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)", out, re.MULTILINE)
        assert match, out
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50": millis("50%"), "p99": millis("99%"), "total": total,
        "failed": int(failed.group(1)) if failed else 0,
        "socket_errors": sum(int(g) for g in errors.groups()) if errors else 0,
    }


def open_loop(target: Target, rate: float, seconds: float) -> dict[str, float]:
    return uvloop.run(load.open_loop(target.url, target.headers, BODY.encode(), rate, seconds))


def streams(target: Target, count: int, chunks: int, gap_ms: int) -> dict[str, float]:
    return uvloop.run(load.streams(target.url, target.headers, count, chunks, gap_ms))


def long_stream(target: Target, chunks: int) -> int:
    return uvloop.run(load.long_stream(target.url, target.headers, chunks))


# -- the systems under test -------------------------------------------------------------------

def stop_group(process: subprocess.Popen[bytes]) -> None:
    """Stop a server started in its own session, with every process it spawned."""
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(30)


def start_tokensea(stack: ExitStack, mock: str, workers: int, access_log: bool, work: Path) -> tuple[Target, str, str]:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    url = f"{POSTGRES}?schema={schema}"
    config = work / "tokensea.toml"
    config.write_text(CONFIG.format(mock=mock, access_log="true" if access_log else "false"))
    port = free_port()
    env = {**os.environ, "TOKENSEA_DATABASE_URL": url, "MOCK_KEY": "sk-mock", "TOKENSEA_JWT_SECRET": "b" * 64}
    log = (work / "tokensea.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "edge.cli", "--config", str(config), "serve", "--port", str(port),
                                "--workers", str(workers)], env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    stack.callback(stop_group, process)
    stack.callback(lambda: psycopg.connect(POSTGRES, autocommit=True).execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    base = f"http://127.0.0.1:{port}"
    wait_for(f"{base}/healthz")
    cli = [sys.executable, "-m", "edge.cli", "--config", str(config)]
    subprocess.run([*cli, "admin", "create-user", "bench", "--password-stdin"], input="tide-pool-42\n", env=env,
                   check=True, capture_output=True, text=True)
    subprocess.run([*cli, "admin", "grant", "bench", "1000000000"], env=env, check=True, capture_output=True)
    token = httpx.post(f"{base}/api/auth/login", json={"username": "bench", "password": "tide-pool-42"}).json()["token"]
    key = httpx.post(f"{base}/api/tokens", json={"name": "bench"}, headers={"authorization": f"Bearer {token}"}).json()["key"]
    time.sleep(1.5)  # the grant reaches the projections; admission sees it at once anyway
    workers_pids = [pid for pid in children(process.pid) if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text()]
    return Target("TokenSea", f"{base}/v1/chat/completions", {"authorization": f"Bearer {key}"}, workers_pids), url, key


def start_litellm(stack: ExitStack, mock: str, workers: int, work: Path) -> Target | None:
    binary = BENCH / "litellm-venv" / "bin" / "litellm"
    if not binary.exists():
        print("LiteLLM skipped: create .bench/litellm-venv with litellm[proxy]==1.108.7 (see the README)")
        return None
    config = work / "litellm-config.yaml"
    config.write_text(LITELLM_CONFIG)
    port = free_port()
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "MOCK_BASE": f"{mock}/v1", "LITELLM_LOG": "ERROR"}
    log = (work / "litellm.log").open("wb")
    process = subprocess.Popen([str(binary), "--config", str(config), "--port", str(port), "--num_workers", str(workers)],
                               env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=work)
    stack.callback(stop_group, process)
    wait_for(f"http://127.0.0.1:{port}/health/liveliness", timeout=180)
    pids = [process.pid, *children(process.pid)]
    return Target("LiteLLM", f"http://127.0.0.1:{port}/v1/chat/completions",
                  {"authorization": "Bearer sk-bench-master"}, pids)


def billed_successes(url: str) -> int:
    from ledger import Database
    from ledger.log import EventLog

    log = EventLog(Database.from_url(url))
    try:
        count, position = 0, 0
        while batch := log.read(position, 5000):
            count += sum(1 for _, e in batch if getattr(e, "status", None) == "success")
            position = batch[-1][0]
        return count
    finally:
        log.close()


# -- the run ----------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--soak-minutes", type=float, default=10)
    parser.add_argument("--access-log", action="store_true", help="keep TokenSea's access log on")
    parser.add_argument("--skip-litellm", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tokensea-bench-"))
    with ExitStack() as stack:
        mock_port = free_port()
        mock = subprocess.Popen([sys.executable, "-m", "tests.bench.mock_upstream", "--port", str(mock_port)],
                                start_new_session=True)
        stack.callback(stop_group, mock)
        mock_url = f"http://127.0.0.1:{mock_port}"
        time.sleep(1)
        direct = Target("direct", f"{mock_url}/v1/chat/completions")
        tokensea, database_url, _ = start_tokensea(stack, mock_url, args.workers, args.access_log, work)
        litellm = None if args.skip_litellm else start_litellm(stack, mock_url, args.workers, work)
        targets = [t for t in (direct, tokensea, litellm) if t is not None]

        throughput: dict[str, list[dict[str, float]]] = {t.name: [] for t in targets}
        single: dict[str, list[dict[str, float]]] = {t.name: [] for t in targets}
        fixed: dict[str, list[dict[str, float]]] = {t.name: [] for t in targets}
        for run in range(args.runs):
            for target in targets:
                wrk(target, 4, 2)  # warm the connections and caches
                throughput[target.name].append(wrk(target, args.connections, args.duration))
                single[target.name].append(wrk(target, 1, max(5, args.duration // 2)))
                fixed[target.name].append(open_loop(target, 200, max(5, args.duration // 2)))
                print(f"run {run + 1}: {target.name}: {throughput[target.name][-1]['rps']:.0f} req/s", flush=True)
        streaming = {t.name: streams(t, 30, 50, 10) for t in targets}
        before = max(rss_mb(pid) for pid in tokensea.pids)
        delivered = long_stream(tokensea, 10_000)
        after_stream = max(rss_mb(pid) for pid in tokensea.pids)
        soak: list[float] = []
        if args.soak_minutes > 0:
            end = time.monotonic() + args.soak_minutes * 60
            while time.monotonic() < end:
                open_loop(tokensea, 100, 30)
                soak.append(max(rss_mb(pid) for pid in tokensea.pids))
        # The exact check: wrk drops requests in flight when it stops (the gateway may
        # have charged them), so it is made on a load where every answer is awaited.
        time.sleep(1)
        billed_before = billed_successes(database_url)
        checked = open_loop(tokensea, 200, 10)
        time.sleep(1)
        billed = billed_successes(database_url) - billed_before

    def median(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(row[key] for row in rows)

    print(f"\nHardware: {os.cpu_count()} cores, {Path('/proc/meminfo').read_text().split()[1]} kB; "
          f"{args.workers} workers each; medians of {args.runs} runs; wrk {args.connections} connections x {args.duration} s\n")
    print("| target | req/s @32 | p50 ms | p99 ms | p50 @1 conn | p99 @1 conn | p50 @200 req/s | p99 @200 req/s | failed |")
    print("|---|---|---|---|---|---|---|---|---|")
    for target in targets:
        t, s, f = throughput[target.name], single[target.name], fixed[target.name]
        print(f"| {target.name} | {median(t, 'rps'):,.0f} | {median(t, 'p50'):.2f} | {median(t, 'p99'):.2f} | "
              f"{median(s, 'p50'):.2f} | {median(s, 'p99'):.2f} | {median(f, 'p50'):.2f} | {median(f, 'p99'):.2f} | "
              f"{sum(r['failed'] + r.get('socket_errors', 0) for r in t + s) + sum(r['failed'] for r in f):.0f} |")
    print("\nAdded latency over direct (ms):")
    for target in targets[1:]:
        print(f"- {target.name}: @1 connection p50 +{median(single[target.name], 'p50') - median(single['direct'], 'p50'):.2f}, "
              f"p99 +{median(single[target.name], 'p99') - median(single['direct'], 'p99'):.2f}; "
              f"@200 req/s p50 +{median(fixed[target.name], 'p50') - median(fixed['direct'], 'p50'):.2f}, "
              f"p99 +{median(fixed[target.name], 'p99') - median(fixed['direct'], 'p99'):.2f}")
    busiest = max(row["generator_cpu"] for rows in fixed.values() for row in rows)
    print(f"\nThe 200 req/s generator used at most {busiest:.0%} of one core.")
    if litellm is not None:
        ratio = median(throughput["TokenSea"], "rps") / median(throughput["LiteLLM"], "rps")
        print(f"\nThroughput, TokenSea / LiteLLM: {ratio:.1f}x; TokenSea / direct: "
              f"{median(throughput['TokenSea'], 'rps') / median(throughput['direct'], 'rps'):.2f}")
    print("\nStreaming (30 streams x 50 chunks, 10 ms apart upstream):")
    for name, values in streaming.items():
        print(f"- {name}: time to first chunk {values['ttfb']:.2f} ms, gap between chunks median {values['gap']:.2f} ms, "
              f"p99 {values['gap_p99']:.2f} ms")
    print(f"\nTokenSea worker RSS: {before:.0f} MB before a {delivered:,}-chunk stream, {after_stream:.0f} MB after")
    if soak:
        print(f"Soak ({args.soak_minutes:g} min at 100 req/s): RSS {soak[0]:.0f} MB at first sample, "
              f"max {max(soak):.0f} MB, {soak[-1]:.0f} MB at the end")
    verdict = "equal" if billed == checked["ok"] else "DIFFERENT"
    print(f"\nBilling check: {checked['ok']:,} successful answers, {billed:,} TokensConsumed with status success: {verdict}")


if __name__ == "__main__":
    main()
