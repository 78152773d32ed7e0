"""What a serving process does for the ledger in the background, once a second, on a
thread and a connection of its own:

- heartbeat, and settle the holds of processes that died (``ledger.recovery``);
- release the *unsure* holds: those whose admission failed with the database (their
  callers were refused with a 503) yet may have landed, with nobody left to settle them;
- vacuum the tables every request churns, after every ``vacuum_after_holds`` of this
  process's holds (about every 2 s at full load), or every ``VACUUM_AFTER_SECONDS`` when
  fewer come; a process that admitted nothing does not.

Every charge it records goes through the group commit, like any other.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable

from domain.charges import Charge
from ledger.connections import ThreadConnections
from ledger.database import Database
from ledger.errors import LedgerError
from ledger.failures import classify
from ledger.recovery import Recovery
from ledger.schema import vacuum_churning_tables

log = logging.getLogger(__name__)

VACUUM_AFTER_HOLDS = 2000
VACUUM_AFTER_SECONDS = 30.0
_CHUNK = 500


class Maintenance:
    def __init__(
        self,
        db: Database,
        recovery: Recovery,
        settle: Callable[[Charge.TokensConsumed], bool],
        *,
        vacuum_after_holds: int = VACUUM_AFTER_HOLDS,
    ) -> None:
        self._db = db
        self.recovery = recovery
        self._settle = settle
        self._vacuum_after_holds = vacuum_after_holds
        self._connections = ThreadConnections(db)
        self._holds_since_vacuum = 0
        self._unsure: set[str] = set()
        self._unsure_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- told by the writers (any thread) ----------------------------------------------

    def admitted(self, count: int) -> None:
        # Unsynchronized: a lost increment only delays a vacuum slightly.
        self._holds_since_vacuum += count

    def unsure(self, request_ids: list[str]) -> None:
        with self._unsure_lock:
            self._unsure.update(request_ids)

    # -- the thread --------------------------------------------------------------------

    def start(self) -> None:
        self.recovery.register(self._connections.get(), socket.gethostname(), os.getpid())
        self._thread = threading.Thread(target=self._run, name="ledger-maintenance", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self._connections.close()

    def _run(self) -> None:
        last_cleanup = last_vacuum = 0.0
        while not self._stop.wait(1.0):
            try:
                conn = self._connections.get()
                self.recovery.heartbeat(conn)
                for charge in self.recovery.orphaned_charges(conn):
                    if self._settle(charge):
                        log.warning("recovered request %s as interrupted", charge.request_id)
                self._release_unsure(conn)
                churned = self._holds_since_vacuum
                if churned >= self._vacuum_after_holds or (churned and time.monotonic() - last_vacuum > VACUUM_AFTER_SECONDS):
                    self._holds_since_vacuum = 0
                    vacuum_churning_tables(self._db, conn)
                    last_vacuum = time.monotonic()
                if time.monotonic() - last_cleanup > 60:
                    self.recovery.forget_finished(conn)
                    last_cleanup = time.monotonic()
            except Exception as exc:
                self._connections.drop()
                if isinstance(exc, LedgerError) or classify(exc) is not None:
                    log.warning("ledger maintenance: %s", exc)
                else:
                    log.exception("ledger maintenance failed")

    def _release_unsure(self, conn: object) -> None:
        with self._unsure_lock:
            unsure = list(self._unsure)
        for start in range(0, len(unsure), _CHUNK):
            chunk = unsure[start : start + _CHUNK]
            for charge in self.recovery.abandoned_charges(conn, chunk):
                if self._settle(charge):
                    log.warning("released request %s, admitted as the database failed, as interrupted", charge.request_id)
            with self._unsure_lock:
                self._unsure.difference_update(chunk)
