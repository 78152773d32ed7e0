"""Counters shared by every worker and host: attempts per subject in a window, kept in
the database (``ts_throttle``) so that a limit holds across a deployment, not per process.

``hit`` is one statement that increments and returns the count (an upsert with
``RETURNING``), so concurrent attempts each see a distinct count and none slips under a
limit. A window opens at a subject's first hit and lasts ``window`` seconds; the next
hit after it closes starts a new one. Windows are timed by the caller's clock in
milliseconds: a skew between hosts only moves a window's end by the skew. Expired rows
are deleted by ``purge``. Subjects are stored as digests, never as sent (people type
passwords into username fields).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

from ledger import Database

_HIT = (
    "INSERT INTO ts_throttle AS t (subject, window_end, hits) VALUES (%s, %s, 1) "
    "ON CONFLICT (subject) DO UPDATE SET "
    "hits = CASE WHEN t.window_end > %s THEN t.hits + 1 ELSE 1 END, "
    "window_end = CASE WHEN t.window_end > %s THEN t.window_end ELSE excluded.window_end END "
    "RETURNING hits, window_end"
)
_RELEASE = "UPDATE ts_throttle SET hits = hits - 1 WHERE subject = %s AND hits > 0 AND window_end > %s"
_CLEAR = "DELETE FROM ts_throttle WHERE subject = %s"
_PURGE = "DELETE FROM ts_throttle WHERE window_end <= %s"


@dataclass(frozen=True, slots=True)
class Count:
    hits: int  # in the current window, this one included
    seconds_left: float  # until the window closes


def subject(*parts: str) -> str:
    """A fixed-size key for ``parts`` (length-prefixed, so no two tuples share one)."""
    joined = "".join(f"{len(part)}:{part}" for part in parts)
    return hashlib.sha256(joined.encode("utf-8", "surrogatepass")).hexdigest()[:40]


def _now_ms() -> int:
    return int(time.time() * 1000)


def hit(db: Database, conn: Any, key: str, window: float) -> Count:
    """Count one attempt for ``key`` (a ``subject``) in its ``window`` (seconds)."""
    now = _now_ms()
    cur = conn.cursor()
    try:
        cur.execute(db.sql(_HIT), [key, now + int(window * 1000), now, now])
        row = cur.fetchone()
    finally:
        cur.close()
    return Count(int(row["hits"]), max(int(row["window_end"]) - now, 0) / 1000)


def release(db: Database, conn: Any, key: str) -> None:
    """Take one attempt back (it turned out to be legitimate)."""
    conn.execute(db.sql(_RELEASE), [key, _now_ms()])


def clear(db: Database, conn: Any, key: str) -> None:
    conn.execute(db.sql(_CLEAR), [key])


def purge(db: Database, conn: Any) -> None:
    """Delete the rows whose window has closed."""
    conn.execute(db.sql(_PURGE), [_now_ms()])
