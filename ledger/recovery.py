"""Recovery: settle the holds of edge processes that died.

Each process registers itself in ``ts_instances`` and refreshes a heartbeat every
second. A hold belongs to the process that admitted it. When a process has missed
heartbeats for ``stale_after`` seconds (by the database server's clock, on PostgreSQL,
so that hosts whose clocks disagree agree on it), *as observed by the recovering process* for a
further ``grace`` seconds, its holds are settled as ``interrupted``: a ``TokensConsumed``
with no usage and no cost (nothing more is known), which releases the hold. Timing
the grace from our own observation (not from the stale timestamp) means a process that
was merely cut off from the database, and heartbeats again as soon as it is back, is
never mistaken for a dead one.

Recovery is idempotent: the charge of a request id can be recorded once, so two
processes recovering the same hold, or a late settlement racing recovery, still
produce exactly one ``TokensConsumed``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from domain.charges import Charge, RequestFacts, RequestStatus, UsageSource
from domain.money import Money
from domain.pricing import Price
from domain.usage import TokenUsage
from ledger.database import Database, to_datetime, to_decimal, to_uuid

log = logging.getLogger(__name__)

_NO_PRICE = Price(Decimal(0), Decimal(0), Decimal(0), Decimal(0))


@dataclass
class Recovery:
    db: Database
    instance_id: str
    stale_after: float = 3.0
    grace: float = 5.0
    _suspects: dict[str, float] = field(default_factory=dict)

    def _now(self, conn: Any) -> datetime:
        """The time heartbeats are written and judged by: the database server's on
        PostgreSQL, so hosts whose clocks disagree never take each other for dead; the
        host's on SQLite, whose processes all share one host."""
        if not self.db.is_postgres:
            return datetime.now(timezone.utc)
        cur = conn.cursor()
        try:
            cur.execute("SELECT clock_timestamp() AS now")
            return to_datetime(cur.fetchone()["now"])
        finally:
            cur.close()

    def register(self, conn: Any, host: str, pid: int) -> None:
        now = self._now(conn)
        with self.db.transaction(conn) as cur:
            cur.execute(
                self.db.sql(
                    "INSERT INTO ts_instances (instance_id, host, pid, started_at, heartbeat_at) "
                    "VALUES (%s, %s, %s, %s, %s)"
                ),
                (self.instance_id, host, pid, now, now),
            )

    def heartbeat(self, conn: Any) -> None:
        cur = conn.cursor()
        try:
            cur.execute(
                self.db.sql("UPDATE ts_instances SET heartbeat_at = %s WHERE instance_id = %s"),
                (self._now(conn), self.instance_id),
            )
        finally:
            cur.close()

    def orphaned_charges(self, conn: Any) -> list[Charge.TokensConsumed]:
        """Interrupted charges for every hold whose process is dead."""
        dead = self._dead_instances(conn)
        return [
            _interrupted(row, "the edge process serving this request stopped before it was settled")
            for row in self._holds(conn, "", ())
            if row["instance_id"] in dead
        ]

    def abandoned_charges(self, conn: Any, request_ids: list[str]) -> list[Charge.TokensConsumed]:
        """Interrupted charges for those of ``request_ids`` still held: holds whose
        admission failed with the database (the caller was refused), yet landed."""
        return [
            _interrupted(row, "the ledger failed while this request was admitted; it was refused service")
            for row in self._holds(conn, f" WHERE request_id IN ({self.db.in_list(len(request_ids))})", request_ids)
        ]

    def _holds(self, conn: Any, where: str, params: Any) -> list[Any]:
        cur = conn.cursor()
        try:
            cur.execute(
                self.db.sql(
                    "SELECT request_id, user_id, key_id, amount, instance_id, key_name, model, provider, "
                    "endpoint, stream, requested_at FROM ts_holds" + where
                ),
                params,
            )
            return list(cur.fetchall())
        finally:
            cur.close()

    def _dead_instances(self, conn: Any) -> set[str]:
        cur = conn.cursor()
        try:
            cur.execute("SELECT instance_id, heartbeat_at FROM ts_instances")
            rows = list(cur.fetchall())
            cur.execute("SELECT DISTINCT instance_id FROM ts_holds")
            holders = {row["instance_id"] for row in cur.fetchall()}
        finally:
            cur.close()
        now, seen = self._now(conn), time.monotonic()
        beats = {row["instance_id"]: to_datetime(row["heartbeat_at"]) for row in rows}
        dead: set[str] = set()
        for instance in holders:
            if instance == self.instance_id:
                continue
            beat = beats.get(instance)
            if beat is not None and now - beat < timedelta(seconds=self.stale_after):
                self._suspects.pop(instance, None)
                continue
            first_seen = self._suspects.setdefault(instance, seen)
            if seen - first_seen >= self.grace:
                dead.add(instance)
        for instance in list(self._suspects):
            if instance not in holders:
                del self._suspects[instance]
        return dead

    def forget_finished(self, conn: Any) -> None:
        """Drop rows of stale processes that hold nothing any more."""
        cutoff = self._now(conn) - timedelta(seconds=max(60.0, self.stale_after * 10))
        cur = conn.cursor()
        try:
            cur.execute(
                self.db.sql(
                    "DELETE FROM ts_instances WHERE heartbeat_at < %s AND instance_id NOT IN "
                    "(SELECT DISTINCT instance_id FROM ts_holds)"
                ),
                (cutoff,),
            )
        finally:
            cur.close()


def _interrupted(row: Any, why: str) -> Charge.TokensConsumed:
    """The charge that settles a hold nobody will settle: no usage, no cost (nothing more
    is known), which releases the hold."""
    facts = RequestFacts(
        request_id=row["request_id"],
        user_id=to_uuid(row["user_id"]),
        key_id=to_uuid(row["key_id"]),
        key_name=row["key_name"],
        model=row["model"],
        provider=row["provider"],
        endpoint=row["endpoint"],
        stream=bool(row["stream"]),
        requested_at=to_datetime(row["requested_at"]),
    )
    return Charge.record(
        facts,
        TokenUsage(),
        _NO_PRICE,
        Decimal(1),
        reserved=Money(to_decimal(row["amount"])),
        latency_ms=0,
        status=RequestStatus.INTERRUPTED,
        usage_source=UsageSource.ESTIMATED,
        error=why,
    )
