"""``tokensea serve`` and ``tokensea db``: run the gateway, migrate the schema."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
from dataclasses import replace
from functools import partial
from typing import Any

from edge.cli.common import EXIT_FOUND, EXIT_OK, database_of, say, settings_from


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
    settings = settings_from(args)
    if args.no_projections:  # another process (or host) runs them
        settings = replace(settings, projections=settings.projections.model_copy(update={"run_with_serve": False}))
    # Before any worker opens the ledger; hosts starting together take turns (a lock).
    applied = upgrade(database_of(settings))
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

    db = database_of(settings_from(args))
    applied = upgrade(db)
    say({"applied": applied, "version": status(db).current})
    return EXIT_OK


def db_status(args: argparse.Namespace) -> int:
    from ledger.migrations import status

    found = status(database_of(settings_from(args)))
    say({"version": found.current, "head": found.head, "pending": found.pending})
    return EXIT_OK if not found.pending else EXIT_FOUND


def register(commands: Any) -> None:
    """Add ``serve`` and ``db``."""
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
