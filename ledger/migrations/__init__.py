"""Versioned migrations of TokenSea's database: Alembic, with plain SQL per backend.

``versions/`` holds one file per change, frozen once released: ``0001`` is the schema of
release 0.1.0, written so that it also upgrades a database 0.1.0 created (which has no
version table) in place. ``tokensea db upgrade`` applies what is pending, and
``tokensea serve`` does so at start, under a lock (a PostgreSQL advisory lock; a file
lock beside a SQLite database), so many workers and hosts starting together take turns.
Migrations only go forward: the ledger's history is never rolled back (restore a backup).

Nothing else changes the schema. A ledger opened on a database that is behind (or ahead
of) this release refuses with ``SchemaNotCurrent``, which names the command to run; the
check reads one row, without loading Alembic.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger.database import Database
from ledger.errors import SchemaNotCurrent

HEAD = "0007"  # the newest file in versions/ (a test checks they agree)
VERSION_TABLE = "ts_schema_version"
_LOCK_ID = 7201  # also taken by 0.1.0 while it created its tables


@dataclass(frozen=True)
class Status:
    current: str | None
    head: str
    pending: list[str]


def current_version(db: Database, conn: Any) -> str | None:
    """The version the database is at (None: never migrated; maybe 0.1.0 or empty)."""
    cur = conn.cursor()
    try:
        if db.is_postgres:
            cur.execute("SELECT to_regclass(%s) AS found", [f"{db.schema}.{VERSION_TABLE}"])
            exists = cur.fetchone()["found"] is not None
        else:
            cur.execute("SELECT name AS found FROM sqlite_master WHERE type = 'table' AND name = ?", [VERSION_TABLE])
            exists = cur.fetchone() is not None
        if not exists:
            return None
        cur.execute(f"SELECT version_num FROM {VERSION_TABLE}")
        row = cur.fetchone()
        return None if row is None else str(row["version_num"])
    finally:
        cur.close()


def require_current(db: Database, conn: Any) -> None:
    """Raise ``SchemaNotCurrent`` unless the database is at this release's version."""
    version = current_version(db, conn)
    if version == HEAD:
        return
    if version is None:
        raise SchemaNotCurrent(
            f"the database at {db.redacted()} has no TokenSea schema yet (or one from release 0.1.0): "
            "run `tokensea db upgrade`"
        )
    if version > HEAD:
        raise SchemaNotCurrent(
            f"the database is at schema {version}, newer than this release's {HEAD}: run the newer release"
        )
    raise SchemaNotCurrent(f"the database is at schema {version}, this release needs {HEAD}: run `tokensea db upgrade`")


def status(db: Database, *, read_only: bool = True) -> Status:
    """Where the database stands (read-only unless ``read_only`` is False)."""
    from alembic.script import ScriptDirectory

    current = None
    if db.is_postgres or Path(db.path).is_file():  # else: a SQLite database not made yet
        conn = db.connect(read_only=read_only)
        try:
            current = current_version(db, conn)
        finally:
            conn.close()
    scripts = ScriptDirectory.from_config(_config(db))
    pending = [script.revision for script in scripts.iterate_revisions("heads", current or "base")]
    return Status(current, scripts.get_current_head() or HEAD, list(reversed(pending)))


def upgrade(db: Database) -> list[str]:
    """Apply every pending migration; the versions applied, oldest first."""
    from alembic import command
    from sqlalchemy import create_engine
    from sqlalchemy.engine import URL
    from sqlalchemy.pool import NullPool

    with _exclusive(db):
        pending = status(db, read_only=False).pending
        if not pending:
            return []
        if db.is_postgres:
            engine = create_engine(
                URL.create("postgresql+psycopg", username=db.user, password=db.password or None, host=db.host,
                           port=db.port, database=db.dbname),
                connect_args={"options": f"-c search_path={db.schema}", "connect_timeout": 5},
                poolclass=NullPool,
            )
        else:
            engine = create_engine(f"sqlite:///{db.path}", poolclass=NullPool)
        try:
            with engine.connect() as connection:
                config = _config(db)
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
        finally:
            engine.dispose()
        return pending


def _config(db: Database) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    config.attributes["schema"] = db.schema
    return config


@contextlib.contextmanager
def _exclusive(db: Database) -> Iterator[None]:
    """One migrator at a time per database, across processes and hosts."""
    if db.is_postgres:
        conn = db.connect()
        try:
            conn.execute("SELECT pg_advisory_lock(%s)", [_LOCK_ID])
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{db.schema}"')
            yield
        finally:
            conn.close()  # ends the session, and with it the lock
        return
    Path(db.path).parent.mkdir(parents=True, exist_ok=True)
    handle = os.open(f"{db.path}.migrate.lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)
