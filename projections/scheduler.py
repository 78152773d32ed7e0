"""Scheduled work of the projection process (APScheduler, cron in UTC): rebuilds from
the latest checkpoint, checkpoints, and the request log's retention.

``rebuild_cron`` rebuilds every projection from the latest checkpoint, applies the
retention, then records a checkpoint (so the next rebuild and verify start there).
``checkpoint_cron``, when it differs, records checkpoints between rebuilds too.
Retention also runs every hour.

The projection process is already the only one of its kind beside the workers, but a
deployment may still run several (one per host, or ``projections run`` by hand), so
each job takes a lock first: ``pg_try_advisory_lock`` on PostgreSQL, an exclusive
``flock`` on a file beside the database on SQLite. A run that finds the lock taken
skips; ``max_instances=1, coalesce=True`` keep a slow job from overlapping itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from ledger import Database
from ledger.log import EventLog
from projections import checkpoints, retention
from projections.rebuild import rebuild
from projections.store import ALL, positions
from projections.verify import checkpoint

log = logging.getLogger("tokensea.projections")
LOCK_ID = 7203


@dataclass(frozen=True)
class Schedule:
    rebuild_cron: str = "0 3 * * *"
    checkpoint_cron: str = "0 3 * * *"
    log_retention_days: int | None = None


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


def latest_checkpoint(db: Database, events: EventLog) -> tuple[checkpoints.Checkpoint | None, list[str]]:
    """The checkpoint a rebuild starts from (None: genesis), and the ones refused."""
    conn = db.connect(read_only=True)
    try:
        return checkpoints.latest(conn.cursor(), events.chain_at_with)
    finally:
        conn.close()


def rebuild_from_checkpoint(db: Database, events: EventLog, progress: Callable[[int, int], None] | None = None,
                            projections: tuple = ALL) -> tuple[checkpoints.Checkpoint | None, int]:
    """Rebuild ``projections`` from the latest usable checkpoint; returns it and the
    number of events replayed. A refused checkpoint is logged and passed over. A
    projection whose rows stay in place (the request log) must have got to the
    checkpoint, or the rows between would be lost: if it has not, from genesis."""
    base, refused = latest_checkpoint(db, events)
    for reason in refused:
        log.warning("rebuild: %s", reason)
    if base is not None:
        conn = db.connect(read_only=True)
        try:
            reached = positions(db, conn)
        finally:
            conn.close()
        behind = [p.name for p in projections if p.immutable and reached.get(p.name, 0) < base.position]
        if behind:
            log.warning("rebuild: %s behind %s; rebuilding from genesis", ", ".join(behind), base.describe())
            base = None
    count = rebuild(db, events, projections, progress, base=None if base is None else base.fold())
    return base, count


def _locked(db: Database, name: str, work: Callable[[], None]) -> None:
    with exclusive(db) as mine:
        if not mine:
            log.info("scheduled %s skipped: another process holds the lock", name)
            return
        work()


def _checkpoint(db: Database, events: EventLog) -> None:
    made, report = checkpoint(db, events)
    if report.lines:
        log.error("checkpoint not made: %d difference(s), the first: %s", len(report.lines), report.lines[0])
    elif made is not None:
        log.info("%s made", made.describe())


def _prune(db: Database, days: int) -> None:
    dropped = retention.prune(db, days)
    if dropped:
        log.info("retention: %d request-log rows older than %d days dropped", dropped, days)


def scheduled_rebuild(db: Database, events: EventLog, schedule: Schedule) -> None:
    def work() -> None:
        base, count = rebuild_from_checkpoint(db, events)
        log.info("rebuilt every projection from %s (%d events)",
                 "genesis" if base is None else base.describe(), count)
        if schedule.log_retention_days is not None:
            _prune(db, schedule.log_retention_days)
        if schedule.checkpoint_cron == schedule.rebuild_cron:
            _checkpoint(db, events)

    _locked(db, "rebuild", work)


class Scheduler:
    def __init__(self, db: Database, events: EventLog, schedule: Schedule) -> None:
        self._scheduler = BackgroundScheduler(timezone="UTC")
        jobs: list[tuple[str, Callable[[], None], object]] = [
            ("rebuild", lambda: scheduled_rebuild(db, events, schedule),
             CronTrigger.from_crontab(schedule.rebuild_cron, timezone="UTC")),
        ]
        if schedule.checkpoint_cron != schedule.rebuild_cron:
            jobs.append(("checkpoint", lambda: _locked(db, "checkpoint", lambda: _checkpoint(db, events)),
                         CronTrigger.from_crontab(schedule.checkpoint_cron, timezone="UTC")))
        if (days := schedule.log_retention_days) is not None:
            jobs.append(("retention", lambda: _locked(db, "retention", lambda: _prune(db, days)),
                         IntervalTrigger(hours=1)))
        for name, job, trigger in jobs:
            self._scheduler.add_job(job, trigger, id=name, max_instances=1, coalesce=True, misfire_grace_time=3600)

    def start(self) -> None:
        self._scheduler.start()

    def shutdown(self) -> None:
        with contextlib.suppress(Exception):
            self._scheduler.shutdown(wait=False)
