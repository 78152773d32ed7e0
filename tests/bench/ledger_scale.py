"""Benchmark: the ledger at scale (issue 19; SPEC §7 "cost over time", §8.3).

Run by hand (never in CI):

    python -m tests.bench.ledger_scale [--url postgresql://postgres@127.0.0.1:5432/test]
        [--sizes 1000000,10000000] [--json FILE] [--keep] [--skip-http]

On PostgreSQL, in a fresh schema (dropped afterwards unless ``--keep``), fills a ledger
to each size in turn (each from the previous one) with events of a realistic shape:
1,000 users (one bcrypt hash of ``PASSWORD`` for all), 2,000 keys, a signup grant and a
top-up grant per user, then ``TokensConsumed`` on 4 models, ``requested_at`` spaced as a
gateway at 50 requests/s makes them (N events span N/50 seconds, ending about when the
run started). One user (``u0000``, the one the HTTP measures log in as) makes 25% of the
requests, the others follow Zipf's law; each user's first key takes 70% of its calls.

Charges go through the ledger's real write path: ``Ledger.asettle`` with thousands in
flight, so the group commit batches them. A charge settled without a hold leaves two
rows in the ``ts_settled`` inbox that only an admission folds into the account rows
(``ledger.schema``). Real traffic admits every request, so the inbox stays small; here,
after every ``WINDOW`` charges, each (user, key) pair charged in the window makes one
more request the real way (``Ledger.aadmit`` of a ``Hold``, then ``asettle`` of its
charge): the admission folds the pair's inbox rows, and the inbox is left with the two
rows of each such charge. Those requests are charges of the same shape and count in N.
After each sweep the churning tables are vacuumed, as a serving edge does every 2,000
holds (``ledger.schema.vacuum_churning_tables``). The projections are caught up with the
invite-rewards policy too, as the serving projection process runs it.

For each size, the projections are caught up (``Runner.catch_up``) and a checkpoint is
made (``checkpoint``: it must find no difference). Then it measures:

1. bytes per event on disk: ``pg_total_relation_size`` (heap, indexes, TOAST) of the
   events table, of the ledger's index tables (``ts_*``) and of each read model
   (``proj_*``, the request log's monthly partitions included), divided by the events;
2. after ``EXTRA`` more charges: ``rebuild_from_checkpoint`` against a rebuild from
   genesis, and ``audit`` from the checkpoint against ``audit(full=True)``; the same on a
   ledger with only its users and keys, checkpointed, then ``EXTRA`` charges (the
   baseline: from a checkpoint, the time should be within 2x of it);
3. ``tokensea ledger export | tokensea ledger audit -`` over the whole ledger, in events
   per second (skipped, and said so, while the CLI has no ``ledger audit``);
4. HTTP: ``tokensea serve`` on the filled schema; p50 and p99 of ``GET
   /api/usage/stats`` (7d, 24h), of the first page of ``/api/usage/logs`` and of a deep
   page (page 10,000 through the keyset cursor when the API answers ``nextCursor``,
   else by ``page=``; and the deepest page the offset path serves), against the same on
   a small ledger (~1,000 events: there the deep page is its last).

The first checkpoint and ``audit(full=True)`` hold every request-log row of the ledger
in memory (about 3.7 GB per million events here): mind the machine's memory before a
size of tens of millions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import psycopg

from domain.charges import Charge, RequestFacts, RequestStatus, UsageSource
from domain.grants import GrantReason
from domain.money import Money
from domain.pricing import Price, cost
from domain.usage import TokenUsage
from domain.users import Role
from edge.security import hash_password
from ledger import Database, Hold, Ledger, commands
from ledger.migrations import upgrade
from ledger.schema import vacuum_churning_tables
from projections.invite_rewards import InviteRewards
from projections.rebuild import rebuild
from projections.scheduler import rebuild_from_checkpoint
from projections.store import ALL, Runner
from projections.verify import audit, checkpoint

PASSWORD = "ledger-scale-bench-7"
RATE = 50  # requests per second of the simulated gateway: N events span N / RATE seconds
WINDOW = 50_000  # charges between two admission sweeps
IN_FLIGHT = 5_000  # charges awaiting the group commit at once
EXTRA = 100_000  # events appended after the checkpoint
HEAVY_SHARE = 0.25  # of the requests, made by u0000
SAMPLES = 200  # HTTP requests per measure
DEEP_PAGE = 10_000
PAGE_SIZE = 20
INVITE_REWARD = "100"  # the default ``invite_reward``: serve's projection process runs the policy

# (model, provider, endpoint, price in cents per million tokens, share of requests)
MODELS = (
    ("claude-sonnet-5-5", "anthropic", "/v1/messages", Price.of("200", "1000", "10", "250"), 0.35),
    ("gpt-6.1-terra", "openai", "/v1/chat/completions", Price.of("100", "500", "5", "125"), 0.30),
    ("claude-haiku-5-5", "anthropic", "/v1/messages", Price.of("10", "50", "1", "12.5"), 0.20),
    ("gpt-6-luna", "openai", "/v1/responses", Price.of("10", "50", "1", "12.5"), 0.15),
)
SHARES = [model[4] for model in MODELS]
CONFIG = """
[server]
login_max_failures_per_address = 100000

[projections]
max_lag_seconds = 3600
"""


def log(message: str) -> None:
    print(f"[{datetime.now(timezone.utc):%H:%M:%S}] {message}", flush=True)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def timed(into: dict[str, float], name: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    into[name] = time.perf_counter() - started


# -- the ledger's contents ---------------------------------------------------------------


@dataclass
class Population:
    users: list[UUID]
    keys: list[list[tuple[UUID, str]]]  # per user: (key id, key name)
    user_weights: list[float]
    names: list[str]


def populate(ledger: Ledger, users: int, keys_per_user: int) -> Population:
    """Users (one real bcrypt hash), a signup grant each, keys, then a top-up grant each."""
    hashed = hash_password(PASSWORD)
    quota = Money("1000000000")  # ten million dollars: admission never refuses
    ids: list[UUID] = []
    names = [f"u{n:04d}" for n in range(users)]
    for name in names:
        ids.append(ledger.run(commands.RegisterUser(name, hashed, f"{name}@bench.example", Role.USER, None, quota,
                                                    Money(0))))
    keys = []
    for n, user in enumerate(ids):
        made = []
        for k in range(keys_per_user):
            key_name = ("laptop", "ci", "server", "notebook")[k % 4]
            key_id = ledger.run(commands.CreateKey(user, key_name, f"bench-digest-{user}-{k}", f"tsk-{n:04d}{k}",
                                                   None, None, None, None))
            made.append((key_id, key_name))
        keys.append(made)
    for n, user in enumerate(ids):
        ledger.run(commands.GrantQuota(user, Money(50_000 + n), GrantReason.ADMIN, "top-up", f"bench-topup:{user}"))
    # u0000 makes HEAVY_SHARE of the requests; the rest share the others by Zipf's law.
    zipf = [1 / rank for rank in range(1, users)]
    scale = (1 - HEAVY_SHARE) / sum(zipf) if zipf else 0.0
    weights = [HEAVY_SHARE if users > 1 else 1.0, *(w * scale for w in zipf)]
    return Population(ids, keys, weights, names)


@dataclass
class Traffic:
    """Charges of a realistic shape, one after another on the simulated timeline."""

    ledger: Ledger
    people: Population
    start: datetime  # requested_at of the request numbered 0
    seed: int = 19
    made: int = 0  # requests made so far (the timeline's clock)
    inbox_peak: int = 0
    inbox_after_sweeps: list[int] = field(default_factory=list)
    admitted: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.cumulative: list[float] = []
        total = 0.0
        for weight in self.people.user_weights:
            total += weight
            self.cumulative.append(total)

    def pair(self) -> tuple[int, int]:
        user = min(self._bisect(self.rng.random() * self.cumulative[-1]), len(self.cumulative) - 1)
        keys = len(self.people.keys[user])
        key = 0 if keys == 1 or self.rng.random() < 0.7 else self.rng.randrange(1, keys)
        return user, key

    def _bisect(self, value: float) -> int:
        low, high = 0, len(self.cumulative)
        while low < high:
            middle = (low + high) // 2
            if self.cumulative[middle] < value:
                low = middle + 1
            else:
                high = middle
        return low

    def charge(self, user: int, key: int, *, held: bool = False) -> Charge.TokensConsumed:
        """The next request's charge; ``held``: against a hold of twice its cost (``reserved``)."""
        rng = self.rng
        model, provider, endpoint, price, _ = rng.choices(MODELS, weights=SHARES)[0]
        key_id, key_name = self.people.keys[user][key]
        at = self.start + timedelta(seconds=self.made / RATE)
        self.made += 1
        facts = RequestFacts(f"req_{uuid.UUID(int=rng.getrandbits(128)).hex}", self.people.users[user], key_id,
                             key_name, model, provider, endpoint, rng.random() < 0.6, at)
        roll = rng.random()
        status = (RequestStatus.SUCCESS if roll < 0.97 else RequestStatus.ERROR if roll < 0.99
                  else RequestStatus.CLIENT_ABORTED)
        if status is RequestStatus.ERROR:
            usage = TokenUsage()
        else:
            prompt = int(rng.lognormvariate(7.0, 1.2))
            cached = rng.random() < 0.4
            usage = TokenUsage(
                input=min(prompt, 200_000) if not cached else min(prompt // 10, 20_000),
                output=min(int(rng.lognormvariate(5.5, 1.0)), 32_000),
                cache_read=min(prompt, 200_000) if cached else 0,
                cache_write=rng.randrange(0, 4000) if rng.random() < 0.1 else 0,
            )
        reserved = Money(max(Decimal(1), cost(usage, price, Decimal(1)).cents * 2)) if held else Money(0)
        return Charge.record(facts, usage, price, Decimal(1), reserved=reserved,
                             latency_ms=int(rng.lognormvariate(7.5, 0.8)), status=status,
                             usage_source=UsageSource.UPSTREAM if status is RequestStatus.SUCCESS
                             else UsageSource.ESTIMATED,
                             error="upstream 529" if status is RequestStatus.ERROR else None)

    async def _settle_all(self, charges: list[Charge.TokensConsumed]) -> None:
        for first in range(0, len(charges), IN_FLIGHT):
            results = await asyncio.gather(*(self.ledger.asettle(c) for c in charges[first:first + IN_FLIGHT]))
            assert all(results), "a charge collided"

    async def _sweep(self, pairs: list[tuple[int, int]]) -> None:
        """One request per pair the real way: admitted (which folds the pair's inbox rows
        into its account rows), then charged against its hold."""
        charges = [self.charge(user, key, held=True) for user, key in pairs]
        holds = [Hold(RequestFacts(c.request_id, c.user_id, c.key_id, c.key_name, c.model, c.provider, c.endpoint,
                                   c.stream, c.requested_at), c.reserved, self.ledger.instance_id)
                 for c in charges]
        for first in range(0, len(holds), IN_FLIGHT):
            await asyncio.gather(*(self.ledger.aadmit(h) for h in holds[first:first + IN_FLIGHT]))
        self.admitted += len(holds)
        await self._settle_all(charges)

    async def run(self, count: int, inbox: Callable[[], int], vacuum: Callable[[], None],
                  progress: bool = True) -> None:
        """Exactly ``count`` charges, in windows each followed by a sweep of its pairs."""
        remaining = count
        started = time.perf_counter()
        while remaining > 0:
            pairs = [self.pair() for _ in range(min(WINDOW, remaining))]
            while len(pairs) + len(set(pairs)) > remaining:  # the sweep counts too
                pairs.pop()
            swept = sorted(set(pairs))
            await self._settle_all([self.charge(user, key) for user, key in pairs])
            self.inbox_peak = max(self.inbox_peak, inbox())
            await self._sweep(swept)
            vacuum()  # as a serving edge does every 2,000 holds (``ledger.schema``)
            self.inbox_after_sweeps.append(inbox())
            remaining -= len(pairs) + len(swept)
            if progress:
                done = count - remaining
                log(f"  {done:,}/{count:,} charges, {done / (time.perf_counter() - started):,.0f}/s, "
                    f"inbox {self.inbox_peak:,} at most before a sweep, {self.inbox_after_sweeps[-1]:,} after")


# -- a schema of its own ---------------------------------------------------------------------


@dataclass
class Bench:
    base_url: str
    schema: str
    ledger: Ledger

    @property
    def url(self) -> str:
        return f"{self.base_url}?schema={self.schema}"

    @property
    def db(self) -> Database:
        return self.ledger.db

    def scalar(self, sql: str, params: list[Any] | None = None) -> Any:
        with psycopg.connect(self.base_url, autocommit=True) as conn:
            conn.execute(f"SET search_path TO {self.schema}")
            row = conn.execute(sql, params or []).fetchone()
            return None if row is None else row[0]

    def inbox(self) -> int:
        return int(self.scalar("SELECT count(*) FROM ts_settled"))

    def vacuum(self) -> None:
        with psycopg.connect(self.base_url, autocommit=True) as conn:
            conn.execute(f"SET search_path TO {self.schema}")
            vacuum_churning_tables(self.db, conn)

    def head(self) -> int:
        return int(self.ledger.log.head())

    def catch_up(self) -> float:
        """Every projection, and the policy the serving projection process runs (else
        ``serve`` would start by reading the whole ledger for it)."""
        started = time.perf_counter()
        runner = Runner(self.db, self.ledger.log, policies=[InviteRewards(self.ledger, Money(INVITE_REWARD), 10)])
        try:
            runner.catch_up()
        finally:
            runner.reset()
        return time.perf_counter() - started

    def checkpoint(self) -> float:
        started = time.perf_counter()
        made, report = checkpoint(self.db, self.ledger.log)
        if report.lines:
            log(f"CHECKPOINT FOUND {len(report.lines)} DIFFERENCE(S):")
            for line in report.lines[:50]:
                log(f"  {line}")
            raise SystemExit("checkpoint refused: see the differences above (a bug to report)")
        assert made is not None, "checkpoint made nothing"
        return time.perf_counter() - started

    def sizes(self) -> dict[str, int]:
        """Bytes of every table of the schema (heap, indexes, TOAST), the request log's
        partitions counted in their parent."""
        sql = """
            SELECT coalesce(parent.relname, c.relname) AS name,
                   sum(pg_total_relation_size(c.oid)) AS total,
                   sum(pg_indexes_size(c.oid)) AS indexes
            FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace
            LEFT JOIN pg_inherits i ON i.inhrelid = c.oid
            LEFT JOIN pg_class parent ON parent.oid = i.inhparent
            WHERE n.nspname = %s AND c.relkind = 'r'
            GROUP BY 1 ORDER BY 1
        """
        with psycopg.connect(self.base_url, autocommit=True) as conn:
            conn.execute("ANALYZE")
            rows = conn.execute(sql, [self.schema]).fetchall()
        found = {}
        for name, total, indexes in rows:
            found[name] = int(total)
            if name == "tokensea_events":
                found["tokensea_events (indexes)"] = int(indexes)
        return found


def open_bench(base_url: str, label: str) -> Bench:
    schema = f"bench_{label}_{uuid.uuid4().hex[:6]}"
    url = f"{base_url}?schema={schema}"
    upgrade(Database.from_url(url))
    return Bench(base_url, schema, Ledger(Database.from_url(url)))


def drop(bench: Bench, keep: bool) -> None:
    bench.ledger.close()
    if keep:
        log(f"kept schema {bench.schema}")
        return
    with psycopg.connect(bench.base_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {bench.schema} CASCADE")


# -- the measures -------------------------------------------------------------------------


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


# -- the run -----------------------------------------------------------------------------------


def baseline(base_url: str, users: int, keys: int, runs: int, keep: bool) -> dict[str, Any]:
    """A ledger of users and keys only, checkpointed, then EXTRA charges."""
    bench = open_bench(base_url, "empty")
    try:
        people = populate(bench.ledger, users, keys)
        bench.catch_up()
        bench.checkpoint()
        traffic = Traffic(bench.ledger, people, datetime.now(timezone.utc) - timedelta(seconds=EXTRA / RATE))
        asyncio.run(traffic.run(EXTRA, bench.inbox, bench.vacuum, progress=False))
        bench.catch_up()
        return measure_replays(bench, runs)
    finally:
        drop(bench, keep)


def small_ledger_http(base_url: str, samples: int, keep: bool) -> dict[str, Any]:
    """The HTTP measures on a ledger of about 1,000 events: 10 users, 20 keys."""
    bench = open_bench(base_url, "small")
    try:
        people = populate(bench.ledger, 10, 2)
        count = 1000 - bench.head()
        traffic = Traffic(bench.ledger, people, datetime.now(timezone.utc) - timedelta(seconds=count / RATE))
        asyncio.run(traffic.run(count, bench.inbox, bench.vacuum, progress=False))
        bench.catch_up()
        result = measure_http(bench, people.names[0], samples)
        result["events"] = bench.head()
        return result
    finally:
        drop(bench, keep)


def main() -> None:
    global EXTRA
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--sizes", default="1000000,10000000", help="events, comma-separated, ascending")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--keys-per-user", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3, help="of the (short) replays from a checkpoint")
    parser.add_argument("--samples", type=int, default=SAMPLES)
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the schemas")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--extra", type=int, default=EXTRA, help="events appended after the checkpoint")
    args = parser.parse_args()
    EXTRA = args.extra
    sizes = sorted(int(size) for size in args.sizes.split(","))
    with psycopg.connect(args.url) as conn:
        sync = conn.execute("SHOW synchronous_commit").fetchone()
        assert sync is not None and sync[0] == "on", "the benchmark measures durable commits"
        version = conn.execute("SHOW server_version").fetchone()
    results: dict[str, Any] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": " ".join(sys.argv),
        "postgresql": None if version is None else version[0], "cpus": os.cpu_count(), "sizes": {},
    }

    def save() -> None:
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2, default=str))

    if not args.skip_baseline:
        log(f"baseline: {args.users} users, their keys, a checkpoint, then {EXTRA:,} charges")
        results["baseline"] = baseline(args.url, args.users, args.keys_per_user, args.runs, args.keep)
        save()
    if not args.skip_http:
        log("small ledger (~1,000 events): HTTP")
        results["small_http"] = small_ledger_http(args.url, args.samples, args.keep)
        save()
    bench = open_bench(args.url, "scale")
    log(f"schema {bench.schema}")
    try:
        started = time.perf_counter()
        people = populate(bench.ledger, args.users, args.keys_per_user)
        log(f"{args.users} users, {args.users * args.keys_per_user} keys: {bench.head():,} events in "
            f"{time.perf_counter() - started:.1f} s")
        # The timeline ends about now, after the largest size and each size's EXTRA.
        span = (sizes[-1] + EXTRA * len(sizes)) / RATE
        traffic = Traffic(bench.ledger, people, datetime.now(timezone.utc) - timedelta(seconds=span))
        for size in sizes:
            found: dict[str, Any] = {}
            results["sizes"][str(size)] = found
            phases: dict[str, float] = {}
            count = size - bench.head()
            log(f"fill to {size:,} events: {count:,} charges")
            charges_before, admitted_before = traffic.made, traffic.admitted
            with timed(phases, "fill"):
                asyncio.run(traffic.run(count, bench.inbox, bench.vacuum))
            found["fill"] = {"charges": traffic.made - charges_before, "seconds": phases["fill"],
                             "charges_per_s": (traffic.made - charges_before) / phases["fill"],
                             "admitted_with_a_hold": traffic.admitted - admitted_before,
                             "inbox_peak_before_a_sweep": traffic.inbox_peak,
                             "inbox_after_sweeps_max": max(traffic.inbox_after_sweeps),
                             "inbox_now": bench.inbox(), "holds_now": int(bench.scalar("SELECT count(*) FROM ts_holds"))}
            log(f"  filled: {found['fill']}")
            with timed(phases, "catch_up"):
                bench.catch_up()
            log(f"  projections caught up in {phases['catch_up']:.1f} s")
            with timed(phases, "checkpoint"):
                bench.checkpoint()
            log(f"  checkpoint at {bench.head():,} in {phases['checkpoint']:.1f} s, peak RSS {peak_rss_mb():,.0f} MB")
            found["events"] = bench.head()
            found["phases"] = phases
            found["bytes"] = bench.sizes()
            found["bytes_per_event"] = {name: total / found["events"] for name, total in found["bytes"].items()}
            save()
            with timed(phases, "extra"):
                asyncio.run(traffic.run(EXTRA, bench.inbox, bench.vacuum, progress=False))
            with timed(phases, "extra_catch_up"):
                bench.catch_up()
            log(f"  {EXTRA:,} more charges, caught up; replays")
            found["replays"] = measure_replays(bench, args.runs)
            save()
            log("  export | audit")
            found["export_audit"] = measure_export_audit(bench)
            save()
            if not args.skip_http:
                log("  HTTP")
                found["http"] = measure_http(bench, people.names[0], args.samples)
                save()
            found["disk_free_gb_after"] = round(os.statvfs("/work").f_bavail * os.statvfs("/work").f_frsize / 1e9, 1)
            report(results)
    finally:
        drop(bench, args.keep)
    report(results)
    save()


def report(results: dict[str, Any]) -> None:
    base = results.get("baseline")
    small = results.get("small_http")
    for size, found in results["sizes"].items():
        if "events" not in found:
            continue
        print(f"\n== {int(size):,} events (at the checkpoint: {found['events']:,}) ==")
        fill = found["fill"]
        print(f"fill: {fill['charges']:,} charges in {fill['seconds']:.0f} s ({fill['charges_per_s']:,.0f}/s), "
              f"{fill['admitted_with_a_hold']:,} of them admitted first; ts_settled at most "
              f"{fill['inbox_peak_before_a_sweep']:,} rows before a sweep, {fill['inbox_after_sweeps_max']:,} after")
        print("| table | MB | bytes/event |\n|---|---|---|")
        for name, total in found["bytes"].items():
            print(f"| {name} | {total / 1e6:,.1f} | {found['bytes_per_event'][name]:,.1f} |")
        everything = sum(v for k, v in found["bytes"].items() if not k.endswith("(indexes)"))
        print(f"| **all** | {everything / 1e6:,.1f} | {everything / found['events']:,.1f} |")
        if "replays" in found:
            replays = found["replays"]
            print("| operation | events | seconds | events/s | empty-ledger baseline s | ratio |\n|---|---|---|---|---|---|")
            for name in ("rebuild_from_checkpoint", "rebuild_genesis", "audit_from_checkpoint", "audit_full"):
                events = replays[f"{name}_events"]
                line = f"| {name} | {events:,} | {replays[name]:.2f} | {events / replays[name]:,.0f} |"
                if base is not None:
                    line += f" {base[name]:.2f} | {replays[name] / base[name]:.2f}x |"
                print(line)
        if "export_audit" in found:
            print(f"export | audit: {found['export_audit']}")
        if "http" in found:
            http = found["http"]
            print(f"| HTTP ({http['user']}, {http['user_log_rows']:,} log rows) | p50 ms | p99 ms | small p50 | small p99 |"
                  "\n|---|---|---|---|---|")
            for name in ("stats_7d", "stats_24h", "logs_first_page", "deep_page", "deepest_offset_page", "last_page"):
                if name not in http:
                    continue
                row = http[name]
                label = f"{name} (page {row['page']})" if "page" in row else name
                theirs = (small or {}).get(name if name in (small or {}) else "deep_page", {})
                print(f"| {label} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | "
                      f"{theirs.get('p50_ms', float('nan')):.2f} | {theirs.get('p99_ms', float('nan')):.2f} |")


if __name__ == "__main__":
    main()
