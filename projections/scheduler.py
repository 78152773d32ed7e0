"""Scheduled rebuilds (APScheduler, cron in UTC), run by one process per deployment.

The projection process is already the only one of its kind beside the workers, but a
deployment may still run several (one per host, or ``projections run`` by hand), so
each job takes a lock first: ``pg_try_advisory_lock`` on PostgreSQL, an exclusive
``flock`` on a file beside the database on SQLite. A run that finds the lock taken
skips; ``max_instances=1, coalesce=True`` keep a slow rebuild from overlapping itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from ledger import Database
from ledger.log import EventLog
from projections.rebuild import rebuild
from projections.store import ALL

log = logging.getLogger("tokensea.projections")
LOCK_ID = 7203


@contextlib.contextmanager
def exclusive(db: Database) -> Iterator[bool]:
    """True if this process holds the deployment-wide rebuild lock for the block."""
    if db.is_postgres:
        conn = db.connect()
        try:
            row = conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", [LOCK_ID]).fetchone()
            yield bool(row["ok"])
        finally:
            conn.close()  # releases the session lock
        return
    path = f"{db.path}.rebuild.lock"
    handle = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(handle)


def rebuild_all(db: Database, events: EventLog) -> None:
    with exclusive(db) as mine:
        if not mine:
            log.info("scheduled rebuild skipped: another process is rebuilding")
            return
        count = rebuild(db, events, ALL)
        log.info("rebuilt every projection from %d events", count)


class Scheduler:
    def __init__(self, db: Database, events: EventLog, cron: str) -> None:
        self._scheduler = BackgroundScheduler(timezone="UTC")
        self._scheduler.add_job(
            rebuild_all,
            CronTrigger.from_crontab(cron, timezone="UTC"),
            args=[db, events],
            id="rebuild",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=3600,
        )

    def start(self) -> None:
        self._scheduler.start()

    def shutdown(self) -> None:
        with contextlib.suppress(Exception):
            self._scheduler.shutdown(wait=False)
