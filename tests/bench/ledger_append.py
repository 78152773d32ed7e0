"""Benchmark: durable TokensConsumed per second through the group-commit writer.

Run by hand (never in CI):

    python -m tests.bench.ledger_append [--url postgresql://postgres@127.0.0.1:5432/test] [--count 20000]

Each charge is submitted the way the edge submits it (one awaiting caller per request,
many in flight) and counts only once its transaction has committed with synchronous
commit on. Also measures admissions (holds) per second. Uses a fresh schema.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

import psycopg

from domain.money import Money
from ledger import Database, Hold, Ledger
from ledger.migrations import upgrade
from tests.ledger.helpers import charge, facts, new_key, register


async def _run(ledger: Ledger, count: int, in_flight: int) -> tuple[float, float]:
    user = register(ledger, "bench", quota="100000000")
    key = new_key(ledger, user)
    semaphore = asyncio.Semaphore(in_flight)

    async def admit(n: int) -> None:
        async with semaphore:
            await ledger.aadmit(Hold(facts(f"b{n}", user, key), Money(1), ledger.instance_id))

    async def settle(n: int) -> None:
        async with semaphore:
            assert await ledger.asettle(charge(f"b{n}", user, key, tokens=n % 1000, reserved="1"))

    started = time.perf_counter()
    await asyncio.gather(*(admit(n) for n in range(count)))
    holds = count / (time.perf_counter() - started)
    started = time.perf_counter()
    await asyncio.gather(*(settle(n) for n in range(count)))
    settles = count / (time.perf_counter() - started)
    return holds, settles


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--in-flight", type=int, default=256)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    results = []
    for _ in range(args.runs):
        url, schema = args.url, None
        if url.startswith("postgres"):
            schema = f"bench_{uuid.uuid4().hex[:8]}"
            url = f"{url}?schema={schema}"
        upgrade(Database.from_url(url))
        ledger = Ledger(Database.from_url(url))
        try:
            if ledger.db.is_postgres:
                with psycopg.connect(args.url) as conn:
                    sync = conn.execute("SHOW synchronous_commit").fetchone()
                    assert sync is not None and sync[0] == "on", "the benchmark measures durable commits"
            results.append(asyncio.run(_run(ledger, args.count, args.in_flight)))
        finally:
            ledger.close()
            if schema:
                with psycopg.connect(args.url, autocommit=True) as conn:
                    conn.execute(f"DROP SCHEMA {schema} CASCADE")
        print(f"run: holds {results[-1][0]:,.0f}/s  charges {results[-1][1]:,.0f}/s")
    print(
        f"median of {args.runs}: holds {statistics.median(r[0] for r in results):,.0f}/s, "
        f"durable TokensConsumed {statistics.median(r[1] for r in results):,.0f}/s"
    )


if __name__ == "__main__":
    main()
