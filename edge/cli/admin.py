"""``tokensea admin``: create users, grant quota, assign plans."""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from typing import Any

from edge.cli.common import EXIT_FOUND, EXIT_OK, EXIT_USAGE, Failure, database_of, say, settings_from
from edge.settings import Settings


def _ledger(settings: Settings) -> Any:
    from ledger import Ledger

    return Ledger(database_of(settings))


def create_user(args: argparse.Namespace) -> int:
    from domain.users import Role
    from edge.passwords import weakness
    from edge.security import hash_password
    from ledger import Conflict, commands

    settings = settings_from(args)
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
    say({"id": str(user_id), "username": args.username, "role": args.role})
    return EXIT_OK


def grant(args: argparse.Namespace) -> int:
    from domain.errors import InvalidAmount
    from domain.grants import GrantReason
    from domain.money import Money
    from edge import grants
    from ledger import commands

    settings = settings_from(args)
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
    say({"username": args.username, "amount": str(amount), "recorded": bool(recorded)})
    return EXIT_OK


def assign_plans(args: argparse.Namespace) -> int:
    from edge.entitlements import held_now, known_plans
    from edge.errors import Problem
    from ledger import commands

    settings = settings_from(args)
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
    say({"username": args.username, "plans": list(held.plans), "defaultPlan": held.default})
    return EXIT_OK


def register(commands: Any) -> None:
    """Add ``admin``."""
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
