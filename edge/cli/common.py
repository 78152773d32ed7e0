"""What every ``tokensea`` command shares: exit codes, the one-line failure, settings,
the database, a progress bar, and JSON output."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from edge.settings import Settings, load

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


def settings_from(args: argparse.Namespace) -> Settings:
    return load(getattr(args, "config", None))


def database_of(settings: Settings) -> Any:
    from ledger import Database

    return Database.from_url(settings.database_url)


def progress_bar(label: str) -> Callable[[int, int], None]:
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


def say(record: dict[str, Any]) -> None:
    print(json.dumps(record))


class Parser(argparse.ArgumentParser):
    """Usage errors in one line, like every other failure (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"tokensea: {message} (see `{self.prog} --help`)\n")
