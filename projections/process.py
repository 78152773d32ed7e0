"""The projection process: one per deployment, beside the HTTP workers (or on its own
with ``tokensea projections run``). It follows the ledger, runs the scheduled rebuilds
and pays invite rewards (``projections.invite_rewards``); nothing else in a deployment
does either."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from domain.money import Money
from ledger import Database, Ledger
from ledger.log import EventLog
from projections.invite_rewards import InviteRewards
from projections.scheduler import Schedule, Scheduler
from projections.store import Runner, lag_report

log = logging.getLogger("tokensea.projections")


def _report_lag(db: Database, events: EventLog, report: Callable[[str, float], None], stop: threading.Event) -> None:
    conn = None
    while not stop.wait(2.0):
        try:
            conn = conn or db.connect()
            for lag in lag_report(db, conn, events):
                report(lag.name, lag.seconds)
        except Exception:  # noqa: BLE001 - a lost connection is reopened next time
            conn = None


def run(
    database_url: str,
    schedule: Schedule,
    configure_logs: Callable[[], None] | None = None,
    report_lag: Callable[[str, float], None] | None = None,
    invite_reward: str = "0",
    invite_max_rewards_per_day: int = 10,
    **_: Any,
) -> None:
    """Run until SIGTERM/SIGINT; survives the database going away and coming back."""
    if configure_logs is not None:
        configure_logs()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    db = Database.from_url(database_url)
    ledger = None
    while ledger is None and not stop.is_set():
        try:
            ledger = Ledger(db, readers=1)
        except Exception as exc:  # noqa: BLE001 - wait for the database (and its schema) to appear
            log.warning("projections: cannot open the ledger yet (%s); retrying", exc)
            stop.wait(2.0)
    if ledger is None:
        return
    events = ledger.log
    reward = Money.parse(invite_reward)
    policies = [InviteRewards(ledger, reward, invite_max_rewards_per_day)] if reward.cents > 0 else []
    scheduler = Scheduler(db, events, schedule)
    scheduler.start()
    if report_lag is not None:
        threading.Thread(target=_report_lag, args=(db, events, report_lag, stop), daemon=True).start()
    log.info("projections: following the ledger; rebuilds at '%s' UTC", schedule.rebuild_cron)
    started = time.monotonic()
    try:
        Runner(db, events, policies=policies).run(stop)
    finally:
        scheduler.shutdown()
        ledger.close()
        log.info("projections: stopped after %.0f s", time.monotonic() - started)
