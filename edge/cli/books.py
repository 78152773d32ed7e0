"""``tokensea projections`` and ``tokensea ledger``: the read models, and the auditor's
commands (verify, checkpoint, export, head, audit)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from edge.cli.common import (
    EXIT_FOUND,
    EXIT_OK,
    EXIT_USAGE,
    Failure,
    database_of,
    progress_bar,
    say,
    settings_from,
)


def projections_run(args: argparse.Namespace) -> int:
    from edge.logs import configure
    from projections import process

    configure()
    settings = settings_from(args)
    process.run(settings.database_url, settings.projections.schedule(), invite_reward=str(settings.invite_reward),
                invite_max_rewards_per_day=settings.invite_max_rewards_per_day)
    return EXIT_OK


def projections_rebuild(args: argparse.Namespace) -> int:
    import time

    from ledger.log import EventLog
    from projections.rebuild import rebuild
    from projections.scheduler import exclusive, rebuild_from_checkpoint
    from projections.store import ALL, by_name

    db = database_of(settings_from(args))
    try:
        chosen = (by_name(args.name),) if args.name else ALL
    except KeyError as exc:
        raise Failure(exc.args[0], EXIT_USAGE) from None
    events = EventLog(db)
    try:
        with exclusive(db) as mine:
            if not mine:
                raise Failure("another process is rebuilding; try again later", EXIT_FOUND)
            started = time.perf_counter()
            if args.from_genesis:
                base, count = None, rebuild(db, events, chosen, progress_bar("rebuild"))
            else:
                base, count = rebuild_from_checkpoint(db, events, progress_bar("rebuild"), chosen)
            elapsed = time.perf_counter() - started
            rate = count / elapsed if elapsed else 0
            say({"projections": [p.name for p in chosen], "from": "genesis" if base is None else base.describe(),
                  "events": count, "seconds": round(elapsed, 3), "eventsPerSecond": round(rate)})
    finally:
        events.close()
    return EXIT_OK


def projections_status(args: argparse.Namespace) -> int:
    from ledger.log import EventLog
    from projections.store import lag_report

    db = database_of(settings_from(args))
    events = EventLog(db, read_only=True)
    conn = db.connect(read_only=True)
    try:
        for lag in lag_report(db, conn, events):
            say({"projection": lag.name, "position": lag.position, "head": lag.head,
                  "eventsBehind": lag.events, "secondsBehind": round(lag.seconds, 3)})
    finally:
        conn.close()
        events.close()
    return EXIT_OK


def _covered(report: Any) -> str:
    start = "genesis" if report.base is None else report.base.describe()
    if report.last < report.first:
        return f"no events after {start}"
    return f"positions {report.first}-{report.last} (from {start})"


def _differences(label: str, report: Any) -> bool:
    """Print each difference on stdout and their count on stderr; False if there are none."""
    for line in report.lines:
        print(line)
    if report.lines:
        print(f"{label} {len(report.lines)} difference(s); {_covered(report)}", file=sys.stderr)
    return bool(report.lines)


def ledger_verify(args: argparse.Namespace) -> int:
    from ledger.log import EventLog
    from projections.verify import audit

    db = database_of(settings_from(args))
    events = EventLog(db, read_only=True)
    try:
        report = audit(db, events, progress_bar("verify"), full=args.full)
    finally:
        events.close()
    if _differences("ledger verify:", report):
        return EXIT_FOUND
    print(f"ledger verify: every derived value agrees with the events; {_covered(report)}", file=sys.stderr)
    return EXIT_OK


def ledger_checkpoint(args: argparse.Namespace) -> int:
    from ledger.log import EventLog
    from projections.verify import checkpoint

    db = database_of(settings_from(args))
    events = EventLog(db)
    try:
        made, report = checkpoint(db, events, progress_bar("verify"))
    finally:
        events.close()
    if _differences("ledger checkpoint: not made,", report):
        return EXIT_FOUND
    if made is None:
        since = "genesis" if report.base is None else report.base.describe()
        print(f"ledger checkpoint: no events since {since}, nothing to record", file=sys.stderr)
        return EXIT_OK
    say({"checkpoint": made.id, "position": made.position, "verified": _covered(report)})
    return EXIT_OK


def ledger_export(args: argparse.Namespace) -> int:
    from ledger.export import export
    from ledger.log import EventLog

    events = EventLog(database_of(settings_from(args)), read_only=True)
    try:
        for line in export(events, since=args.since):
            sys.stdout.write(line + "\n")
    finally:
        events.close()
    return EXIT_OK


def ledger_head(args: argparse.Namespace) -> int:
    from ledger.log import EventLog

    events = EventLog(database_of(settings_from(args)), read_only=True)
    try:
        position, chain = events.head_hash()
    finally:
        events.close()
    if args.json:
        say({"position": position, "hash": chain.hex()})
    else:
        print(f"{position}:{chain.hex()}")
    return EXIT_OK


def ledger_audit(args: argparse.Namespace) -> int:
    """Offline: the file alone (no database, no configuration)."""
    from ledger.audit import audit, parse_hash, parse_head

    try:
        after = None if args.after is None else parse_hash(args.after)
        heads = [parse_head(head) for head in args.head]
    except ValueError as exc:
        raise Failure(str(exc), EXIT_USAGE) from None
    try:
        source = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")  # noqa: SIM115
    except OSError as exc:
        raise Failure(f"cannot read {args.file}: {exc.strerror}", EXIT_USAGE) from None
    with source:
        report = audit(source, after=after, heads=heads)
    for row in report.problems if not report.ok else report.totals():
        print(row if isinstance(row, str) else json.dumps(row))
    print(report.summary(), file=sys.stderr)
    return EXIT_OK if report.ok else EXIT_FOUND


def register(commands: Any) -> None:
    """Add ``projections`` and ``ledger``."""
    views = commands.add_parser("projections", help="read models").add_subparsers(dest="action", required=True)
    views.add_parser("run", help="follow the ledger and run scheduled rebuilds").set_defaults(handler=projections_run)
    again = views.add_parser("rebuild", help="rebuild from the ledger and swap in")
    again.add_argument("name", nargs="?", help="balances, request_logs, daily_usage or hourly_usage (default: all)")
    again.add_argument("--from-genesis", action="store_true", help="replay every event, not from the latest checkpoint")
    again.set_defaults(handler=projections_rebuild)
    views.add_parser("status", help="positions and lag (read-only)").set_defaults(handler=projections_status)

    books = commands.add_parser("ledger", help="audit the ledger").add_subparsers(dest="action", required=True)
    check = books.add_parser("verify", help="recompute every derived value from the events since the latest "
                             "checkpoint and compare (read-only)")
    check.add_argument("--full", action="store_true", help="from genesis, and check every checkpoint too")
    check.set_defaults(handler=ledger_verify)
    books.add_parser("checkpoint", help="verify since the latest checkpoint, then record one where every projection has got to"
                     ).set_defaults(handler=ledger_checkpoint)
    out = books.add_parser("export", help="every event as JSON lines, in order (read-only)")
    out.add_argument("--since", type=int, default=0, help="only events after this notification id")
    out.set_defaults(handler=ledger_export)
    top = books.add_parser("head", help="the last event's position and hash in the chain, as POSITION:HASH "
                                        "(publish it: a later export must contain it) (read-only)")
    top.add_argument("--json", action="store_true", help='print {"position": N, "hash": HEX}')
    top.set_defaults(handler=ledger_head)
    check = books.add_parser("audit", help="check an export's hash chain offline and recompute every balance "
                                           "from it (no database needed); exit 1 on any break")
    check.add_argument("file", metavar="FILE", help="an export (`ledger export`), or - for standard input")
    check.add_argument("--after", metavar="HASH",
                       help="for an export made with --since N: the hash at position N (checks the first link)")
    check.add_argument("--head", metavar="POSITION:HASH", action="append", default=[],
                       help="a head published earlier (`ledger head`): the export must contain it (repeatable)")
    check.set_defaults(handler=ledger_audit)
