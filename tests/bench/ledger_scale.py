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

Memory grows with users, keys and usage rows, not with events (``verify`` compares the
request log a batch at a time): 452 MB at 1.1M events here. The ledger it fills is
``tests.bench.scale_ledger``; the measures are ``tests.bench.scale_measures``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg

from tests.bench.scale_ledger import EXTRA, RATE, Traffic, drop, log, open_bench, peak_rss_mb, populate, timed
from tests.bench.scale_measures import SAMPLES, measure_export_audit, measure_http, measure_replays


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
