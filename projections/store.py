"""The projections' tables, their positions, and the runner that keeps them current.

Each projection records the notification id it has applied up to in ``proj_tracking``,
in the same transaction as its rows. The runner locks those tracking rows, re-reads the
positions under the lock, and applies only events beyond them: so an event is applied
exactly once even if two runners ever overlap, or a rebuild swaps tables meanwhile.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

from ledger.database import Database, to_datetime
from ledger.log import EventLog
from projections.balances import Balances
from projections.base import Projection, Target
from projections.logs import RequestLogs
from projections.usage import DailyUsage, HourlyUsage

log = logging.getLogger(__name__)

ALL: tuple[Projection, ...] = (Balances(), RequestLogs(), DailyUsage(), HourlyUsage())


def by_name(name: str) -> Projection:
    for projection in ALL:
        if projection.name == name:
            return projection
    raise KeyError(f"no projection named {name!r}; known: {', '.join(p.name for p in ALL)}")


def live_tables(projection: Projection) -> dict[str, str]:
    return {logical: logical for logical in projection.tables}


def ensure_tracking(db: Database, conn: Any, names: Sequence[str]) -> None:
    """Give each projection (or policy) its position row (tables come from the migrations)."""
    with db.transaction(conn) as cur:
        for name in names:
            cur.execute(
                db.sql("INSERT INTO proj_tracking (name, position) VALUES (%s, 0) ON CONFLICT (name) DO NOTHING"),
                [name],
            )


class Policy(Protocol):
    """Something that acts on new events through the ledger (``projections.invite_rewards``):
    it follows the log like a projection, and whatever it does must be safe to redo."""

    name: str

    def handle(self, events: Sequence[tuple[int, Any]]) -> None: ...


def lock_positions(db: Database, cur: Any, names: Sequence[str]) -> dict[str, int]:
    cur.execute(
        db.sql(
            f"SELECT name, position FROM proj_tracking WHERE name IN ({db.in_list(len(names))}) "
            "ORDER BY name FOR UPDATE"
        ),
        list(names),
    )
    return {row["name"]: int(row["position"]) for row in cur.fetchall()}


def positions(db: Database, conn: Any) -> dict[str, int]:
    cur = conn.cursor()
    try:
        cur.execute("SELECT name, position FROM proj_tracking")
        return {row["name"]: int(row["position"]) for row in cur.fetchall()}
    finally:
        cur.close()


@dataclass
class Lag:
    name: str
    position: int
    head: int
    events: int
    seconds: float


def _close(conn: Any) -> None:
    """Close a connection that may already be broken."""
    if conn is not None:
        with contextlib.suppress(Exception):
            conn.close()


def lag_report(db: Database, conn: Any, events: EventLog) -> list[Lag]:
    """How far each projection trails the ledger, in events and in seconds (the age of
    the oldest event it has not applied)."""
    head = events.head()
    now = datetime.now(timezone.utc)
    report = []
    recorded = positions(db, conn)
    for name in sorted(projection.name for projection in ALL):
        position = recorded.get(name, 0)  # a projection that never ran has no row yet
        seconds = 0.0
        if position < head:
            following = events.read(position, 1)
            if following:
                seconds = max(0.0, (now - to_datetime(following[0][1].timestamp)).total_seconds())
        report.append(Lag(name, position, head, max(0, head - position), seconds))
    return report


class Runner:
    """Applies new ledger events to every projection, in batches."""

    def __init__(
        self,
        db: Database,
        events: EventLog,
        projections: Sequence[Projection] = ALL,
        batch: int = 2000,
        on_batch: Callable[[int, float], None] | None = None,
        policies: Sequence[Policy] = (),
    ) -> None:
        self.db = db
        self.events = events
        self.projections = tuple(projections)
        self.policies = tuple(policies)
        self._names = [p.name for p in self.projections] + [p.name for p in self.policies]
        self.batch = batch
        self.on_batch = on_batch
        self._conn: Any = None

    def _connection(self) -> Any:
        if self._conn is None:
            self._conn = self.db.connect()
            ensure_tracking(self.db, self._conn, self._names)
        return self._conn

    def reset(self) -> None:
        _close(self._conn)
        self._conn = None

    def step(self) -> int:
        """Apply the next batch of events; the number of events read (0: caught up)."""
        conn = self._connection()
        known = positions(self.db, conn)
        start = min(known.get(name, 0) for name in self._names)
        batch = self.events.read(start, self.batch)
        if not batch:
            return 0
        started = time.perf_counter()
        with self.db.transaction(conn) as cur:
            locked = lock_positions(self.db, cur, [p.name for p in self.projections])
            for projection in self.projections:
                position = locked.get(projection.name, 0)
                todo = [item for item in batch if item[0] > position]
                if not todo:
                    continue
                projection.apply(Target(self.db, cur, live_tables(projection)), todo)
                cur.execute(
                    self.db.sql("UPDATE proj_tracking SET position = %s WHERE name = %s"),
                    [todo[-1][0], projection.name],
                )
        for policy in self.policies:  # after the read models: what it did is redone on a replay
            todo = [item for item in batch if item[0] > known.get(policy.name, 0)]
            if todo:
                policy.handle(todo)
                with self.db.transaction(conn) as cur:
                    cur.execute(self.db.sql("UPDATE proj_tracking SET position = %s WHERE name = %s"),
                                [todo[-1][0], policy.name])
        if self.on_batch is not None:
            self.on_batch(len(batch), time.perf_counter() - started)
        return len(batch)

    def catch_up(self) -> int:
        total = 0
        while (count := self.step()) > 0:
            total += count
        return total

    def run(self, stop: threading.Event, idle: float = 0.05, gather: float = 0.1) -> None:
        """Follow the ledger until ``stop`` is set; survives database outages.

        After a partial batch it waits ``gather`` seconds before the next, so that under
        steady traffic each step applies many events (a few statements per batch, not
        per commit) while the lag stays well under a second.
        """
        waiter = _Waiter(self.db, self.events.channel)
        while not stop.is_set():
            try:
                count = self.step()
                if count == 0:
                    waiter.wait(idle if self.events.channel is None else 0.5)
                elif count < self.batch:
                    stop.wait(gather)
            except Exception as exc:  # noqa: BLE001 - a runner must outlive outages
                log.warning("projection runner: %s; retrying", exc)
                self.reset()
                waiter.reset()
                stop.wait(1.0)
        waiter.reset()
        self.reset()

    def lag(self) -> list[Lag]:
        return lag_report(self.db, self._connection(), self.events)


class _Waiter:
    """Sleeps until new events may exist: LISTEN/NOTIFY on PostgreSQL, a short poll on SQLite."""

    def __init__(self, db: Database, channel: str | None) -> None:
        self.db = db
        self.channel = channel
        self._conn: Any = None

    def wait(self, timeout: float) -> None:
        if self.channel is None:
            time.sleep(timeout)
            return
        if self._conn is None:
            self._conn = self.db.connect()
            self._conn.execute(f'LISTEN "{self.channel}"')
        for _ in self._conn.notifies(timeout=timeout, stop_after=1):
            break

    def reset(self) -> None:
        _close(self._conn)
        self._conn = None
