"""The ledger the scale benchmark (``tests.bench.ledger_scale``) fills: users, keys and
grants, then charges at a simulated 50 requests/s through the real write path, with
the inbox kept small as a serving edge keeps it; and the schema it lives in."""

from __future__ import annotations

import asyncio
import random
import resource
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

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
from projections.store import Runner
from projections.verify import checkpoint

PASSWORD = "ledger-scale-bench-7"


RATE = 50  # requests per second of the simulated gateway: N events span N / RATE seconds


WINDOW = 50_000  # charges between two admission sweeps


IN_FLIGHT = 5_000  # charges awaiting the group commit at once


EXTRA = 100_000  # events appended after the checkpoint


HEAVY_SHARE = 0.25  # of the requests, made by u0000


INVITE_REWARD = "100"  # the default ``invite_reward``: serve's projection process runs the policy


# (model, provider, endpoint, price in cents per million tokens, share of requests)
MODELS = (
    ("claude-sonnet-5-5", "anthropic", "/v1/messages", Price.of("200", "1000", "10", "250"), 0.35),
    ("gpt-6.1-terra", "openai", "/v1/chat/completions", Price.of("100", "500", "5", "125"), 0.30),
    ("claude-haiku-5-5", "anthropic", "/v1/messages", Price.of("10", "50", "1", "12.5"), 0.20),
    ("gpt-6-luna", "openai", "/v1/responses", Price.of("10", "50", "1", "12.5"), 0.15),
)


SHARES = [model[4] for model in MODELS]


def log(message: str) -> None:
    print(f"[{datetime.now(timezone.utc):%H:%M:%S}] {message}", flush=True)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def timed(into: dict[str, float], name: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    into[name] = time.perf_counter() - started


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
