"""What every projection is: a few tables and a batched fold of ledger events.

A projection names its tables by their *logical* names; a ``Target`` maps each to the
physical table being written (the live one, or a fresh one during a rebuild). ``apply``
receives a whole batch of events and must write it with a handful of statements, not
one per event: that is what makes catch-up and rebuilds fast.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ledger.database import Database

TYPES = {
    "postgres": {"uuid": "uuid", "money": "numeric", "ts": "timestamptz"},
    "sqlite": {"uuid": "TEXT", "money": "TEXT", "ts": "TEXT"},
}


@dataclass(frozen=True)
class Target:
    """Where a projection writes: a cursor in an open transaction, and table names."""

    db: Database
    cur: Any
    tables: dict[str, str]
    fresh: bool = False  # the tables are new and only this writer fills them (a rebuild)

    def __getitem__(self, logical: str) -> str:
        return self.tables[logical]

    def sql(self, statement: str) -> str:
        return self.db.sql(statement)

    def select(self, statement: str, params: Sequence[Any]) -> list[Any]:
        self.cur.execute(self.db.sql(statement), list(params))
        return list(self.cur.fetchall())

    def copy(self, table: str, columns: Sequence[tuple[str, str]], rows: Iterable[Sequence[Any]]) -> None:
        """Bulk-load rows: a binary COPY on PostgreSQL, ``executemany`` on SQLite.

        ``columns`` are (name, PostgreSQL type) pairs: binary COPY needs the types.
        """
        names = ", ".join(name for name, _ in columns)
        if not self.db.is_postgres:
            self.executemany(f"INSERT INTO {table} ({names}) VALUES ({self.db.in_list(len(columns))})", rows)
            return
        with self.cur.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types([kind for _, kind in columns])
            for row in rows:
                copy.write_row(row)

    def insert_new(self, table: str, columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[Any]], key: str) -> None:
        """Insert rows, skipping any whose ``key`` is there already. On PostgreSQL the
        rows go by binary COPY into a temporary table, emptied at each commit, and from
        there in one statement: an INSERT per row cost the projection process and the
        database about twice as much."""
        if not rows:
            return
        names = ", ".join(name for name, _ in columns)
        if not self.db.is_postgres:
            self.executemany(
                f"INSERT INTO {table} ({names}) VALUES ({self.db.in_list(len(columns))}) ON CONFLICT ({key}) DO NOTHING",
                rows,
            )
            return
        staging = f"staging_{table.rsplit('.', 1)[-1]}"
        self.cur.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging} (LIKE {table}) ON COMMIT DELETE ROWS")
        self.copy(staging, columns, rows)
        self.cur.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {staging} ON CONFLICT ({key}) DO NOTHING")

    def executemany(self, statement: str, rows: Iterable[Sequence[Any]]) -> None:
        batch = list(rows)
        if batch:
            self.cur.executemany(self.db.sql(statement), batch)


class Projection(ABC):
    #: stable name, also the key of its position in ``proj_tracking``
    name: ClassVar[str]
    #: logical table name -> column definitions, with {uuid}, {money}, {ts} placeholders
    tables: ClassVar[dict[str, str]]
    #: (logical table, index suffix, indexed columns)
    indexes: ClassVar[tuple[tuple[str, str, str], ...]] = ()
    #: rows never change once written (each carries its event's ``position``): a rebuild
    #: from a checkpoint replaces only the rows past it, and keeps the others in place
    immutable: ClassVar[bool] = False

    def create(self, db: Database, cur: Any, tables: dict[str, str], generation: str, *, options: str = "",
               **placeholders: str) -> None:
        """Create the tables (``options`` follow the column list: a partitioning)."""
        for logical, columns in self.tables.items():
            physical = tables[logical]
            definition = columns.format(**TYPES[db.backend], **placeholders)
            cur.execute(f"CREATE TABLE IF NOT EXISTS {physical} ({definition}){options}")
        for logical, suffix, columns in self.indexes:
            # Index names are unique per schema: the generation keeps a rebuild's apart.
            index = f"{logical}_{generation}_{suffix}"
            cur.execute(f"CREATE INDEX IF NOT EXISTS {index} ON {tables[logical]} ({columns})")

    @abstractmethod
    def apply(self, target: Target, events: Sequence[tuple[int, Any]]) -> None:
        """Fold a batch of ``(notification id, event)`` into the target tables."""
