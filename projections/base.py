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

    def __getitem__(self, logical: str) -> str:
        return self.tables[logical]

    def sql(self, statement: str) -> str:
        return self.db.sql(statement)

    def select(self, statement: str, params: Sequence[Any]) -> list[Any]:
        self.cur.execute(self.db.sql(statement), list(params))
        return list(self.cur.fetchall())

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

    def create(self, db: Database, cur: Any, tables: dict[str, str], generation: str) -> None:
        for logical, columns in self.tables.items():
            physical = tables[logical]
            cur.execute(f"CREATE TABLE IF NOT EXISTS {physical} ({columns.format(**TYPES[db.backend])})")
        for logical, suffix, columns in self.indexes:
            # Index names are unique per schema: the generation keeps a rebuild's apart.
            index = f"{logical}_{generation}_{suffix}"
            cur.execute(f"CREATE INDEX IF NOT EXISTS {index} ON {tables[logical]} ({columns})")

    @abstractmethod
    def apply(self, target: Target, events: Sequence[tuple[int, Any]]) -> None:
        """Fold a batch of ``(notification id, event)`` into the target tables."""
