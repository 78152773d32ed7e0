"""Secrets TokenSea generates for itself (the JWT signing key when none is configured),
kept in the database so every worker and every host shares them."""

from __future__ import annotations

from collections.abc import Callable

from ledger.database import Database


def get_or_create(db: Database, name: str, generate: Callable[[], str]) -> tuple[str, bool]:
    """The stored secret ``name``, creating it once; True if this call created it."""
    conn = db.connect()
    try:
        candidate = generate()
        with db.transaction(conn) as cur:
            cur.execute(
                db.sql("INSERT INTO ts_secrets (name, value) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING"),
                [name, candidate],
            )
            cur.execute(db.sql("SELECT value FROM ts_secrets WHERE name = %s"), [name])
            value = str(cur.fetchone()["value"])
        return value, value == candidate
    finally:
        conn.close()
