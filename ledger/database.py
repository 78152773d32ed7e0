"""Where the ledger lives: the database URL (``TOKENSEA_DATABASE_URL``, read once with the
other settings) parsed into a ``Database``.

Two backends share one SQL dialect written for PostgreSQL (``%s`` placeholders);
``Database.sql()`` adapts a statement for SQLite. Money is ``NUMERIC`` on PostgreSQL
and ``TEXT`` on SQLite, whose numbers are binary floats: on SQLite every sum of money
happens in Python's exact ``Decimal`` context; PostgreSQL's ``numeric`` is exact too, so
its functions (``ts_admit``, ``ts_append_charges``) add and compare there.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, quote, unquote, urlparse
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

from ledger.errors import SchemaNotCurrent

DEFAULT_URL = "sqlite:///tokensea.db"
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

Row = Any  # a psycopg dict row or an sqlite3.Row: both index by column name


class DatabaseUrlError(ValueError):
    """``TOKENSEA_DATABASE_URL`` cannot be understood."""


def _register_sqlite_adapters() -> None:
    sqlite3.register_adapter(Decimal, str)
    sqlite3.register_adapter(UUID, str)
    # Always UTC, always one format: timestamps then compare correctly as text.
    sqlite3.register_adapter(datetime, lambda value: value.astimezone(timezone.utc).isoformat())
    sqlite3.register_adapter(bool, int)


_register_sqlite_adapters()


@dataclass(frozen=True)
class Database:
    """A parsed database URL: which backend, and how to reach it."""

    url: str
    backend: Literal["sqlite", "postgres"]
    path: str = ""  # sqlite
    host: str = ""
    port: int = 5432
    user: str = ""
    password: str = ""
    dbname: str = ""
    schema: str = "public"

    @classmethod
    def from_url(cls, url: str = DEFAULT_URL) -> Database:
        parsed = urlparse(url)
        if parsed.scheme == "sqlite":
            # sqlite:///relative.db and sqlite:////absolute/path.db, as SQLAlchemy reads them.
            path = unquote(url[len("sqlite:///") :]) if url.startswith("sqlite:///") else ""
            if not path:
                raise DatabaseUrlError("a SQLite URL looks like sqlite:///path/to/file.db")
            return cls(url=url, backend="sqlite", path=str(Path(path).expanduser().absolute()))
        if parsed.scheme in ("postgresql", "postgres"):
            query = parse_qs(parsed.query)
            schema = query.get("schema", ["public"])[0]
            if not _SCHEMA_NAME.match(schema):
                raise DatabaseUrlError(f"invalid schema name {schema!r}")
            return cls(
                url=url,
                backend="postgres",
                host=parsed.hostname or "127.0.0.1",
                port=parsed.port or 5432,
                user=unquote(parsed.username or "") or "postgres",
                password=unquote(parsed.password or ""),
                dbname=(parsed.path or "/").lstrip("/") or "postgres",
                schema=schema,
            )
        raise DatabaseUrlError(
            "TOKENSEA_DATABASE_URL must start with sqlite:/// or postgresql://"
        )

    @property
    def is_postgres(self) -> bool:
        return self.backend == "postgres"

    def redacted(self) -> str:
        """The URL without its password, for logs."""
        if not self.password:
            return self.url
        return self.url.replace(f":{self.password}@", ":***@")

    # -- SQL -------------------------------------------------------------------------

    def sql(self, statement: str) -> str:
        """Adapt a PostgreSQL-flavoured statement to this backend."""
        return _adapt(statement) if self.backend == "sqlite" else statement

    def in_list(self, count: int) -> str:
        """Placeholders for ``IN (...)``: ``%s, %s, ...``."""
        return ", ".join(["%s"] * max(count, 1))

    # -- connections -------------------------------------------------------------------

    def connect(self, *, autocommit: bool = True, read_only: bool = False) -> Any:
        """A new DB-API connection whose rows index by column name. ``read_only``: one
        that cannot write, whatever it is asked (the auditor's commands use it)."""
        if self.backend == "sqlite":
            if read_only:
                if not Path(self.path).is_file():
                    raise SchemaNotCurrent(f"there is no database at {self.path}: run `tokensea db upgrade`")
                lite = sqlite3.connect(f"file:{quote(self.path)}?mode=ro", uri=True, timeout=30,
                                       isolation_level=None, check_same_thread=False)
            else:
                lite = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
                lite.execute("PRAGMA journal_mode=WAL")
            lite.row_factory = sqlite3.Row
            lite.execute("PRAGMA busy_timeout=30000")
            return lite
        params = self._postgres_params()
        if read_only:
            params["options"] += " -c default_transaction_read_only=on"
        return psycopg.connect(**params, autocommit=autocommit, row_factory=dict_row)

    async def aconnect(self) -> Any:
        """PostgreSQL: a new asyncio connection, in autocommit, rows by column name."""
        return await psycopg.AsyncConnection.connect(**self._postgres_params(), autocommit=True, row_factory=dict_row)

    def _postgres_params(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password or None,
            "dbname": self.dbname,
            "connect_timeout": 5,
            "options": f"-c search_path={self.schema}",
        }

    @contextmanager
    def transaction(self, conn: Any, *, immediate: bool = True) -> Iterator[Any]:
        """Run a transaction on ``conn`` (autocommit mode); yields a cursor.

        On SQLite ``BEGIN IMMEDIATE`` takes the write lock up front, so a
        read-then-write never fails halfway with SQLITE_BUSY.
        """
        cur = conn.cursor()
        try:
            cur.execute("BEGIN IMMEDIATE" if self.backend == "sqlite" and immediate else "BEGIN")
            yield cur
        except BaseException:
            with contextlib.suppress(Exception):  # the original error matters more
                cur.execute("ROLLBACK")
            raise
        else:
            cur.execute("COMMIT")
        finally:
            cur.close()

    def eventsourcing_env(self) -> dict[str, str]:
        """The environment that points eventsourcing at this database."""
        if self.backend == "sqlite":
            return {
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": self.path,
                "SQLITE_LOCK_TIMEOUT": "30",
                "CREATE_TABLE": "false",  # the migrations create every table
                "APPLICATION_RECORDER_TOPIC": "ledger.recorders:SQLiteLedgerRecorder",
            }
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": self.dbname,
            "POSTGRES_HOST": self.host,
            "POSTGRES_PORT": str(self.port),
            "POSTGRES_USER": self.user,
            "POSTGRES_PASSWORD": self.password,
            "POSTGRES_SCHEMA": self.schema,
            "POSTGRES_CONNECT_TIMEOUT": "5",
            "POSTGRES_POOL_SIZE": "2",
            "POSTGRES_MAX_OVERFLOW": "4",
            "POSTGRES_LOCK_TIMEOUT": "30",
            "CREATE_TABLE": "false",
            "APPLICATION_RECORDER_TOPIC": "ledger.recorders:PostgresLedgerRecorder",
        }


@lru_cache(maxsize=512)
def _adapt(statement: str) -> str:
    adapted = statement.replace("%s", "?")
    adapted = re.sub(r"\s+FOR UPDATE\b", "", adapted)
    return adapted


# -- values: the same Python types from both backends ------------------------------------


def to_decimal(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def to_optional_decimal(value: Any) -> Decimal | None:
    return None if value is None else to_decimal(value)


def to_uuid(value: Any) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))


def to_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def to_optional_datetime(value: Any) -> datetime | None:
    return None if value is None else to_datetime(value)


def executemany(cur: Any, db: Database, statement: str, rows: Sequence[Sequence[Any]]) -> None:
    if rows:
        cur.executemany(db.sql(statement), rows)
