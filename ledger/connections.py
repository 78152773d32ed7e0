"""One database connection per thread, opened on first use and dropped after a failure
(so the next use opens a fresh one: service resumes by itself when the database returns)."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from ledger.database import Database
from ledger.errors import LedgerUnavailable
from ledger.failures import classify


class ThreadConnections:
    def __init__(self, db: Database, *, read_only: bool = False) -> None:
        self._db = db
        self._read_only = read_only
        self._local = threading.local()
        self._opened: set[Any] = set()  # every thread's, so that ``close`` reaches them all
        self._lock = threading.Lock()

    def get(self) -> Any:
        """The calling thread's connection (autocommit; rows by column name)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = self._db.connect(read_only=self._read_only)
            except Exception as exc:
                error = classify(exc)
                if error is None:
                    raise
                raise LedgerUnavailable(f"cannot connect to the database: {error}") from exc
            self._local.conn = conn
            with self._lock:
                self._opened.add(conn)
        return conn

    @property
    def fresh(self) -> bool:
        """Whether the calling thread has no connection yet."""
        return getattr(self._local, "conn", None) is None

    def drop(self) -> None:
        """Close the calling thread's connection; its next use opens a fresh one."""
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            self._close(conn)

    def close(self) -> None:
        """Close every thread's connection (when their threads have finished)."""
        with self._lock:
            opened, self._opened = self._opened, set()
        for conn in opened:
            with contextlib.suppress(Exception):  # closing a broken connection may fail
                conn.close()

    def _close(self, conn: Any) -> None:
        with self._lock:
            self._opened.discard(conn)
        with contextlib.suppress(Exception):  # it is being discarded anyway
            conn.close()
