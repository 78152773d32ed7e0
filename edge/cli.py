"""The ``tokensea`` command: serve, migrate, administer, run projections, audit the ledger.

Every command reads ``TOKENSEA_DATABASE_URL`` (default ``sqlite:///tokensea.db``) and
``TOKENSEA_CONFIG`` (or ``--config``), through the one settings object.

A failure is one line on stderr that says what is wrong and what to do, and an exit
code a script can act on (``EXIT_*`` below); ``--debug`` shows the traceback instead.
The auditor's commands (``db status``, ``projections status``, ``ledger verify``,
``ledger export``, ``ledger head``) only read: on PostgreSQL their sessions are read-only;
``ledger audit`` reads an export and nothing else (no database, no configuration).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from typing import Any, NoReturn

from edge.settings import Settings, SettingsError, load

EXIT_OK = 0
EXIT_FOUND = 1  # the command ran and found a problem: differences, a name taken, a rebuild running
EXIT_USAGE = 2  # bad usage, configuration or input, or a database that needs `tokensea db upgrade`
EXIT_UNREACHABLE = 3  # the database cannot be reached
EXIT_INTERNAL = 70  # a bug: run again with --debug for the traceback


class Failure(Exception):
    """What a command says when it fails: one line, and its exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _settings(args: argparse.Namespace) -> Settings:
    return load(getattr(args, "config", None))


def _database(settings: Settings) -> Any:
    from ledger import Database

    return Database.from_url(settings.database_url)


def _progress(label: str) -> Callable[[int, int], None]:
    """A one-line progress bar on stderr for long replays (silent when not a terminal)."""

    def show(position: int, head: int) -> None:
        if not sys.stderr.isatty() or head <= 0:
            return
        done = min(position / head, 1.0)
        bar = "#" * int(done * 30)
        sys.stderr.write(f"\r{label} [{bar:<30}] {done:6.1%} ({position}/{head})")
        if position >= head:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


def _say(record: dict[str, Any]) -> None:
    print(json.dumps(record))


def serve(args: argparse.Namespace) -> int:
    from edge.metrics import prepare_multiprocess

    made = prepare_multiprocess()  # before anything imports prometheus_client's value classes
    # Workers share one listening socket; by default an event loop that wakes up takes
    # every pending connection, so a burst of connections can all land on one worker.
    # One accept per wake-up lets the others take their share (read by libuv/uvloop).
    os.environ.setdefault("UV_TCP_SINGLE_ACCEPT", "1")

    from sanic import Sanic
    from sanic.worker.loader import AppLoader

    from edge.app import create_app
    from edge.logs import configure
    from ledger.migrations import upgrade

    configure()
    settings = _settings(args)
    if args.no_projections:  # another process (or host) runs them
        settings = replace(settings, projections=settings.projections.model_copy(update={"run_with_serve": False}))
    # Before any worker opens the ledger; hosts starting together take turns (a lock).
    applied = upgrade(_database(settings))
    if applied:
        logging.getLogger("tokensea").warning("database schema upgraded: %s", ", ".join(applied))
    loader = AppLoader(factory=partial(create_app, settings))
    app = loader.load()
    app.prepare(host=args.host, port=args.port, workers=args.workers, access_log=False, motd=False)
    try:
        Sanic.serve(primary=app, app_loader=loader)
    finally:  # the workers are gone: nothing writes there any more
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
    return EXIT_OK


def db_upgrade(args: argparse.Namespace) -> int:
    from ledger.migrations import status, upgrade

    db = _database(_settings(args))
    applied = upgrade(db)
    _say({"applied": applied, "version": status(db).current})
    return EXIT_OK


def db_status(args: argparse.Namespace) -> int:
    from ledger.migrations import status

    found = status(_database(_settings(args)))
    _say({"version": found.current, "head": found.head, "pending": found.pending})
    return EXIT_OK if not found.pending else EXIT_FOUND


def _ledger(settings: Settings) -> Any:
    from ledger import Ledger

    return Ledger(_database(settings))


def create_user(args: argparse.Namespace) -> int:
    from domain.users import Role
    from edge.passwords import weakness
    from edge.security import hash_password
    from ledger import Conflict, commands

    settings = _settings(args)
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else ""
    if not password:
        raise Failure("a password is required on stdin (--password-stdin)", EXIT_USAGE)
    refused = weakness(password, args.username)
    if refused:
        raise Failure(f"password: {refused}", EXIT_USAGE)
    ledger = _ledger(settings)
    try:
        user_id = ledger.run(
            commands.RegisterUser(
                username=args.username,
                password_hash=hash_password(password),
                email=args.email,
                role=Role(args.role),
                inviter_code=None,
                signup_quota=settings.signup_quota,
                invite_reward=settings.invite_reward,
            )
        )
    except Conflict:
        raise Failure(f"user {args.username!r} already exists", EXIT_FOUND) from None
    finally:
        ledger.close()
    _say({"id": str(user_id), "username": args.username, "role": args.role})
    return EXIT_OK


def grant(args: argparse.Namespace) -> int:
    from domain.errors import InvalidAmount
    from domain.grants import GrantReason
    from domain.money import Money
    from edge import grants
    from ledger import commands

    settings = _settings(args)
    try:
        amount = Money.parse(args.cents, allow_zero=False)
    except InvalidAmount as exc:
        raise Failure(f"CENTS: {exc}", EXIT_USAGE) from None
    ledger = _ledger(settings)
    try:
        user = ledger.read(lambda q: q.user_by_username(args.username))
        if user is None:
            raise Failure(f"no user named {args.username!r}", EXIT_USAGE)
        reference = f"admin:{user['user_id']}:{args.reference or uuid.uuid4().hex}"
        note = args.reason or "granted with the CLI"
        recorded = ledger.run(commands.GrantQuota(user["user_id"], amount, GrantReason.ADMIN, note, reference))
        first = None if recorded else grants.recorded(ledger, reference)
    finally:
        ledger.close()
    if first is not None and not first.same_as(user["user_id"], amount, note):
        raise Failure(f"--reference {args.reference!r} was used for a different grant: {json.dumps(first.view())}",
                      EXIT_FOUND)
    _say({"username": args.username, "amount": str(amount), "recorded": bool(recorded)})
    return EXIT_OK


def assign_plans(args: argparse.Namespace) -> int:
    from edge.entitlements import held_now, known_plans
    from edge.errors import Problem
    from ledger import commands

    settings = _settings(args)
    try:
        plans = known_plans(settings.catalogue, args.plans, args.default, "PLAN", "--default")
    except Problem as exc:
        raise Failure(exc.message, EXIT_USAGE) from None
    ledger = _ledger(settings)
    try:
        user = ledger.read(lambda q: q.user_by_username(args.username))
        if user is None:
            raise Failure(f"no user named {args.username!r}", EXIT_USAGE)
        ledger.run(commands.AdministerUser(user["user_id"], None, None, plans=plans, default_plan=args.default))
        held = held_now(ledger, user["user_id"])
    finally:
        ledger.close()
    _say({"username": args.username, "plans": list(held.plans), "defaultPlan": held.default})
    return EXIT_OK


def projections_run(args: argparse.Namespace) -> int:
    from edge.logs import configure
    from projections import process

    configure()
    settings = _settings(args)
    process.run(settings.database_url, settings.projections.schedule(), invite_reward=str(settings.invite_reward),
                invite_max_rewards_per_day=settings.invite_max_rewards_per_day)
    return EXIT_OK


def projections_rebuild(args: argparse.Namespace) -> int:
    import time

    from ledger.log import EventLog
    from projections.rebuild import rebuild
    from projections.scheduler import exclusive, rebuild_from_checkpoint
    from projections.store import ALL, by_name

    db = _database(_settings(args))
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
                base, count = None, rebuild(db, events, chosen, _progress("rebuild"))
            else:
                base, count = rebuild_from_checkpoint(db, events, _progress("rebuild"), chosen)
            elapsed = time.perf_counter() - started
            rate = count / elapsed if elapsed else 0
            _say({"projections": [p.name for p in chosen], "from": "genesis" if base is None else base.describe(),
                  "events": count, "seconds": round(elapsed, 3), "eventsPerSecond": round(rate)})
    finally:
        events.close()
    return EXIT_OK


def projections_status(args: argparse.Namespace) -> int:
    from ledger.log import EventLog
    from projections.store import lag_report

    db = _database(_settings(args))
    events = EventLog(db, read_only=True)
    conn = db.connect(read_only=True)
    try:
        for lag in lag_report(db, conn, events):
            _say({"projection": lag.name, "position": lag.position, "head": lag.head,
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


def ledger_verify(args: argparse.Namespace) -> int:
    from ledger.log import EventLog
    from projections.verify import audit

    db = _database(_settings(args))
    events = EventLog(db, read_only=True)
    try:
        report = audit(db, events, _progress("verify"), full=args.full)
    finally:
        events.close()
    for line in report.lines:
        print(line)
    if report.lines:
        print(f"ledger verify: {len(report.lines)} difference(s); {_covered(report)}", file=sys.stderr)
        return EXIT_FOUND
    print(f"ledger verify: every derived value agrees with the events; {_covered(report)}", file=sys.stderr)
    return EXIT_OK


def ledger_checkpoint(args: argparse.Namespace) -> int:
    from ledger.log import EventLog
    from projections.verify import checkpoint

    db = _database(_settings(args))
    events = EventLog(db)
    try:
        made, report = checkpoint(db, events, _progress("verify"))
    finally:
        events.close()
    for line in report.lines:
        print(line)
    if report.lines:
        print(f"ledger checkpoint: not made, {len(report.lines)} difference(s); {_covered(report)}", file=sys.stderr)
        return EXIT_FOUND
    if made is None:
        since = "genesis" if report.base is None else report.base.describe()
        print(f"ledger checkpoint: no events since {since}, nothing to record", file=sys.stderr)
        return EXIT_OK
    _say({"checkpoint": made.id, "position": made.position, "verified": _covered(report)})
    return EXIT_OK


def ledger_export(args: argparse.Namespace) -> int:
    from ledger.export import export
    from ledger.log import EventLog

    events = EventLog(_database(_settings(args)), read_only=True)
    try:
        for line in export(events, since=args.since):
            sys.stdout.write(line + "\n")
    finally:
        events.close()
    return EXIT_OK


def ledger_head(args: argparse.Namespace) -> int:
    from ledger.log import EventLog

    events = EventLog(_database(_settings(args)), read_only=True)
    try:
        position, chain = events.head_hash()
    finally:
        events.close()
    if args.json:
        _say({"position": position, "hash": chain.hex()})
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


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line, like every other failure (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"tokensea: {message} (see `{self.prog} --help`)\n")


def parser() -> argparse.ArgumentParser:
    root = _Parser(
        prog="tokensea", description="TokenSea: an LLM API gateway with an event-sourced ledger",
        epilog="exit codes: 0 done; 1 a problem found (differences, a name taken, a rebuild running); "
               "2 bad usage, configuration or input, or the database needs `tokensea db upgrade`; "
               "3 the database is unreachable; 70 an internal error (see --debug)",
    )
    root.add_argument("--config", help="TOML configuration file (else TOKENSEA_CONFIG, else ./tokensea.toml)")
    root.add_argument("--debug", action="store_true", help="show the traceback of a failure")
    commands = root.add_subparsers(dest="command", required=True)

    run = commands.add_parser("serve", help="run the gateway (applies pending migrations first)")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8000)
    run.add_argument("--workers", type=int, default=1)
    run.add_argument("--config", default=argparse.SUPPRESS)
    run.add_argument("--no-projections", action="store_true",
                     help="do not start the projection process (run `tokensea projections run` elsewhere)")
    run.set_defaults(handler=serve)

    schema = commands.add_parser("db", help="the database's schema").add_subparsers(dest="action", required=True)
    schema.add_parser("upgrade", help="apply pending migrations").set_defaults(handler=db_upgrade)
    schema.add_parser("status", help="the schema version, and what is pending (exit 1 if any)").set_defaults(
        handler=db_status)

    admin = commands.add_parser("admin", help="administer users").add_subparsers(dest="action", required=True)
    create = admin.add_parser("create-user", help="create a user")
    create.add_argument("username")
    create.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    create.add_argument("--role", choices=["user", "admin"], default="user")
    create.add_argument("--email")
    create.set_defaults(handler=create_user)
    give = admin.add_parser("grant", help="grant quota (cents) to a user")
    give.add_argument("username")
    give.add_argument("cents", help="an exact amount of cents, e.g. 500 or 0.25")
    give.add_argument("--reason", default="")
    give.add_argument("--reference", help="an idempotency reference: the same one grants once")
    give.set_defaults(handler=grant)

    entitle = admin.add_parser("plans", help="set the plans a user holds (none: take them all away)")
    entitle.add_argument("username")
    entitle.add_argument("plans", nargs="*", type=int, metavar="PLAN", help="plan ids from the configuration")
    entitle.add_argument("--default", type=int, help="the plan of keys made without one (default: the first)")
    entitle.set_defaults(handler=assign_plans)

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
    books.add_parser("checkpoint", help="verify since the latest checkpoint, then record one at the head"
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
    return root


def _failure(exc: BaseException) -> Failure:
    """What to tell the user about ``exc``: one line, and the exit code."""
    from domain.errors import DomainError
    from ledger import InvalidValue, LedgerError, LedgerUnavailable, SchemaNotCurrent
    from ledger.database import DatabaseUrlError
    from ledger.failures import classify

    if isinstance(exc, Failure):
        return exc
    if isinstance(exc, SettingsError):
        return Failure(f"configuration error: {exc}", EXIT_USAGE)
    if isinstance(exc, DatabaseUrlError):
        return Failure(f"TOKENSEA_DATABASE_URL: {exc}", EXIT_USAGE)
    if isinstance(exc, SchemaNotCurrent):
        return Failure(str(exc), EXIT_USAGE)
    if isinstance(exc, DomainError | InvalidValue):
        return Failure(str(exc), EXIT_USAGE)
    error = exc if isinstance(exc, LedgerError) else classify(exc)
    if isinstance(error, LedgerUnavailable):
        detail = (str(error).strip() or "no answer").splitlines()[0]
        return Failure(
            f"the database is unreachable ({detail}): check TOKENSEA_DATABASE_URL and that the database is running",
            EXIT_UNREACHABLE,
        )
    if isinstance(error, LedgerError):
        return Failure(str(error), EXIT_USAGE)
    return Failure(f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", EXIT_INTERNAL)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    args = parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if args.debug:
            raise
        failure = _failure(exc)
        print(f"tokensea: {failure}", file=sys.stderr)
        return failure.code


if __name__ == "__main__":
    sys.exit(main())
