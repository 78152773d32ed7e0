"""The ``tokensea`` command: serve, administer, run projections, audit the ledger.

Every command reads ``TOKENSEA_DATABASE_URL`` (default ``sqlite:///tokensea.db``) and
``TOKENSEA_CONFIG`` (or ``--config``).
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
from typing import Any

from edge.settings import Settings, SettingsError, load


def _settings(args: argparse.Namespace) -> Settings:
    return load(getattr(args, "config", None))


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

    configure()
    settings = _settings(args)
    if args.no_projections:  # another process (or host) runs them
        settings = replace(settings, projections=settings.projections.model_copy(update={"run_with_serve": False}))
    loader = AppLoader(factory=partial(create_app, settings))
    app = loader.load()
    app.prepare(host=args.host, port=args.port, workers=args.workers, access_log=False, motd=False)
    try:
        Sanic.serve(primary=app, app_loader=loader)
    finally:  # the workers are gone: nothing writes there any more
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
    return 0


def _ledger(settings: Settings) -> Any:
    from ledger import Database, Ledger

    return Ledger(Database.from_url(settings.database_url))


def create_user(args: argparse.Namespace) -> int:
    from domain.users import Role
    from edge.passwords import weakness
    from edge.security import hash_password
    from ledger import Conflict, commands

    settings = _settings(args)
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else ""
    if not password:
        print("a password is required on stdin (--password-stdin)", file=sys.stderr)
        return 2
    refused = weakness(password, args.username)
    if refused:
        print(f"password: {refused}", file=sys.stderr)
        return 2
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
        print(f"user {args.username!r} already exists", file=sys.stderr)
        return 1
    finally:
        ledger.close()
    print(json.dumps({"id": str(user_id), "username": args.username, "role": args.role}))
    return 0


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
        print(f"CENTS: {exc}", file=sys.stderr)
        return 2
    ledger = _ledger(settings)
    try:
        user = ledger.read(lambda q: q.user_by_username(args.username))
        if user is None:
            print(f"no user named {args.username!r}", file=sys.stderr)
            return 1
        reference = f"admin:{user['user_id']}:{args.reference or uuid.uuid4().hex}"
        note = args.reason or "granted with the CLI"
        recorded = ledger.run(commands.GrantQuota(user["user_id"], amount, GrantReason.ADMIN, note, reference))
        first = None if recorded else grants.recorded(ledger, reference)
    finally:
        ledger.close()
    if first is not None and not first.same_as(user["user_id"], amount, note):
        print(f"--reference {args.reference!r} was used for a different grant: {json.dumps(first.view())}",
              file=sys.stderr)
        return 1
    print(json.dumps({"username": args.username, "amount": str(amount), "recorded": bool(recorded)}))
    return 0


def assign_plans(args: argparse.Namespace) -> int:
    from edge.entitlements import held_now, known_plans
    from edge.errors import Problem
    from ledger import commands

    settings = _settings(args)
    try:
        plans = known_plans(settings.catalogue, args.plans, args.default, "PLAN", "--default")
    except Problem as exc:
        print(exc.message, file=sys.stderr)
        return 2
    ledger = _ledger(settings)
    try:
        user = ledger.read(lambda q: q.user_by_username(args.username))
        if user is None:
            print(f"no user named {args.username!r}", file=sys.stderr)
            return 1
        ledger.run(commands.AdministerUser(user["user_id"], None, None, plans, args.default))
        held = held_now(ledger, user["user_id"])
    finally:
        ledger.close()
    print(json.dumps({"username": args.username, "plans": list(held.plans), "defaultPlan": held.default}))
    return 0


def projections_run(args: argparse.Namespace) -> int:
    from edge.logs import configure
    from projections import process

    configure()
    settings = _settings(args)
    process.run(settings.database_url, settings.projections.rebuild_cron)
    return 0


def projections_rebuild(args: argparse.Namespace) -> int:
    import time

    from ledger import Database
    from ledger.log import EventLog
    from projections.rebuild import rebuild
    from projections.scheduler import exclusive
    from projections.store import ALL, by_name

    settings = _settings(args)
    db = Database.from_url(settings.database_url)
    try:
        chosen = [by_name(args.name)] if args.name else list(ALL)
    except KeyError as exc:
        print(exc.args[0], file=sys.stderr)
        return 2
    events = EventLog(db)
    try:
        with exclusive(db) as mine:
            if not mine:
                print("another process is rebuilding; try again later", file=sys.stderr)
                return 1
            started = time.perf_counter()
            count = rebuild(db, events, chosen, _progress("rebuild"))
            elapsed = time.perf_counter() - started
            rate = count / elapsed if elapsed else 0
            print(json.dumps({"projections": [p.name for p in chosen], "events": count,
                              "seconds": round(elapsed, 3), "eventsPerSecond": round(rate)}))
    finally:
        events.close()
    return 0


def projections_status(args: argparse.Namespace) -> int:
    from ledger import Database
    from ledger.log import EventLog
    from projections.store import Runner

    settings = _settings(args)
    db = Database.from_url(settings.database_url)
    events = EventLog(db)
    runner = Runner(db, events)
    try:
        for lag in runner.lag():
            print(json.dumps({"projection": lag.name, "position": lag.position, "head": lag.head,
                              "eventsBehind": lag.events, "secondsBehind": round(lag.seconds, 3)}))
    finally:
        runner.reset()
        events.close()
    return 0


def ledger_verify(args: argparse.Namespace) -> int:
    from ledger import Database
    from ledger.log import EventLog
    from projections.verify import verify

    settings = _settings(args)
    db = Database.from_url(settings.database_url)
    events = EventLog(db)
    try:
        problems = verify(db, events, _progress("verify"))
    finally:
        events.close()
    for line in problems:
        print(line)
    if problems:
        print(f"ledger verify: {len(problems)} difference(s)", file=sys.stderr)
        return 1
    print("ledger verify: every balance, log and breakdown agrees with the events", file=sys.stderr)
    return 0


def ledger_export(args: argparse.Namespace) -> int:
    from ledger import Database
    from ledger.export import export
    from ledger.log import EventLog

    settings = _settings(args)
    events = EventLog(Database.from_url(settings.database_url))
    try:
        for line in export(events, since=args.since):
            sys.stdout.write(line + "\n")
    finally:
        events.close()
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="tokensea", description="TokenSea: an LLM API gateway with an event-sourced ledger")
    root.add_argument("--config", help="TOML configuration file (else TOKENSEA_CONFIG, else ./tokensea.toml)")
    commands = root.add_subparsers(dest="command", required=True)

    run = commands.add_parser("serve", help="run the gateway")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8000)
    run.add_argument("--workers", type=int, default=1)
    run.add_argument("--config", default=argparse.SUPPRESS)
    run.add_argument("--no-projections", action="store_true",
                     help="do not start the projection process (run `tokensea projections run` elsewhere)")
    run.set_defaults(handler=serve)

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
    again.add_argument("name", nargs="?", help="balances, request_logs or daily_usage (default: all)")
    again.set_defaults(handler=projections_rebuild)
    views.add_parser("status", help="positions and lag").set_defaults(handler=projections_status)

    books = commands.add_parser("ledger", help="audit the ledger").add_subparsers(dest="action", required=True)
    books.add_parser("verify", help="recompute everything from the events and compare").set_defaults(handler=ledger_verify)
    out = books.add_parser("export", help="every event as JSON lines, in order")
    out.add_argument("--since", type=int, default=0, help="only events after this notification id")
    out.set_defaults(handler=ledger_export)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    args = parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
