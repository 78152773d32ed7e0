"""Benchmark: ``tokensea ledger audit`` events per second on a real export.

Run by hand (never in CI):

    python -m tests.bench.ledger_audit [--url postgresql://postgres@127.0.0.1:5432/test] [--count 200000]

Fills a fresh ledger with ``--count`` charges (through the group commit, as the edge
does, plus the users, keys and grants they need), exports it with ``tokensea ledger
export``, and times ``tokensea ledger audit`` on the file, the whole command as an
auditor runs it (interpreter start included). The export is kept if ``--keep FILE``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from domain.money import Money
from ledger import Database, Hold, Ledger
from ledger.migrations import upgrade
from tests.ledger.helpers import charge, facts, new_key, register


async def _fill(ledger: Ledger, count: int, in_flight: int = 256) -> None:
    users = [register(ledger, f"audit{n}", quota="100000000") for n in range(10)]
    keys = [(user, new_key(ledger, user, name=f"k{m}")) for user in users for m in range(3)]
    semaphore = asyncio.Semaphore(in_flight)

    async def one(n: int) -> None:
        user, key = keys[n % len(keys)]
        async with semaphore:
            await ledger.aadmit(Hold(facts(f"a{n}", user, key), Money(1), ledger.instance_id))
            assert await ledger.asettle(charge(f"a{n}", user, key, tokens=n % 1000, reserved="1"))

    await asyncio.gather(*(one(n) for n in range(count)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--keep", help="keep the export in this file")
    args = parser.parse_args()
    url, schema = args.url, None
    if url.startswith("postgres"):
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        url = f"{url}?schema={schema}"
    directory = Path(tempfile.mkdtemp())
    if url.startswith("sqlite"):
        url = f"sqlite:///{directory / 'bench.db'}"
    env = {**os.environ, "TOKENSEA_DATABASE_URL": url}
    try:
        upgrade(Database.from_url(url))
        ledger = Ledger(Database.from_url(url))
        try:
            started = time.perf_counter()
            asyncio.run(_fill(ledger, args.count))
            print(f"filled {args.count:,} charges in {time.perf_counter() - started:.1f}s")
        finally:
            ledger.close()
        export = Path(args.keep) if args.keep else directory / "events.jsonl"
        with export.open("wb") as out:
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "edge.cli", "ledger", "export"], stdout=out, env=env, check=True)
        lines = sum(1 for _ in export.open("rb"))
        print(f"exported {lines:,} events ({export.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - started:.1f}s")
        started = time.perf_counter()
        audited = subprocess.run([sys.executable, "-m", "edge.cli", "ledger", "audit", str(export)],
                                 capture_output=True, text=True, env={"PATH": os.environ.get("PATH", "")}, check=False)
        elapsed = time.perf_counter() - started
        assert audited.returncode == 0, audited.stdout[-2000:] + audited.stderr
        print(audited.stderr.strip())
        print(f"audit: {lines:,} events in {elapsed:.2f}s = {lines / elapsed:,.0f} events/s")
    finally:
        shutil.rmtree(directory, ignore_errors=True)
        if schema:
            with psycopg.connect(args.url, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA {schema} CASCADE")


if __name__ == "__main__":
    main()
