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
import logging
import sys
from collections.abc import Sequence

from edge.cli import admin, books, serving
from edge.cli.common import EXIT_FOUND, EXIT_INTERNAL, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE, Failure, Parser
from edge.settings import SettingsError

__all__ = ["EXIT_FOUND", "EXIT_INTERNAL", "EXIT_OK", "EXIT_UNREACHABLE", "EXIT_USAGE", "Failure", "main", "parser"]


def parser() -> argparse.ArgumentParser:
    root = Parser(
        prog="tokensea", description="TokenSea: an LLM API gateway with an event-sourced ledger",
        epilog="exit codes: 0 done; 1 a problem found (differences, a name taken, a rebuild running); "
               "2 bad usage, configuration or input, or the database needs `tokensea db upgrade`; "
               "3 the database is unreachable; 70 an internal error (see --debug)",
    )
    root.add_argument("--config", help="TOML configuration file (else TOKENSEA_CONFIG, else ./tokensea.toml)")
    root.add_argument("--debug", action="store_true", help="show the traceback of a failure")
    commands = root.add_subparsers(dest="command", required=True)

    for group in (serving, admin, books):
        group.register(commands)
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
