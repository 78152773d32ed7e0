"""Benchmark: rebuilding projections from the ledger, in events per second.

Run by hand (never in CI):

    python -m tests.bench.projection_rebuild [--url postgresql://postgres@127.0.0.1:5432/test] [--events 100000]

Fills a fresh schema (or SQLite file) with ``--events`` TokensConsumed across 50 users,
then rebuilds each projection into fresh tables and swaps it in, several times; prints
the median rate per projection and for all of them together. Target: 20,000 events/s.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from ledger import Database, Ledger
from ledger.migrations import upgrade
from projections.rebuild import rebuild
from projections.store import ALL
from tests.ledger.helpers import charge, new_key, register


def fill(ledger: Ledger, events: int) -> None:
    users = [register(ledger, f"bench{n}", quota="100000000") for n in range(50)]
    keys = [new_key(ledger, user) for user in users]

    async def charges() -> None:  # 5,000 in flight at a time: the group commit batches them
        for start in range(0, events, 5000):
            await asyncio.gather(*(
                ledger.asettle(charge(f"r{n}", users[n % 50], keys[n % 50], tokens=n % 977))
                for n in range(start, min(start + 5000, events))
            ))

    asyncio.run(charges())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    schema = None
    if args.url.startswith("postgres"):
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        url = f"{args.url}?schema={schema}"
    else:
        url = f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}"
    upgrade(Database.from_url(url))
    ledger = Ledger(Database.from_url(url))
    try:
        started = time.perf_counter()
        fill(ledger, args.events)
        total = ledger.log.head()
        print(f"filled {total:,} events in {time.perf_counter() - started:.1f} s ({ledger.db.backend})")
        rates: dict[str, list[float]] = {p.name: [] for p in ALL}
        rates["all of them, one pass"] = []
        for _ in range(args.runs):
            for projection in ALL:
                began = time.perf_counter()
                count = rebuild(ledger.db, ledger.log, [projection])
                rates[projection.name].append(count / (time.perf_counter() - began))
            began = time.perf_counter()
            count = rebuild(ledger.db, ledger.log, ALL)
            rates["all of them, one pass"].append(count / (time.perf_counter() - began))
        for name, values in rates.items():
            print(f"{name:>14}: {statistics.median(values):>9,.0f} events/s (median of {args.runs})")
    finally:
        ledger.close()
        if schema:
            with psycopg.connect(args.url, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA {schema} CASCADE")


if __name__ == "__main__":
    main()
