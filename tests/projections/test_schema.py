"""The read models' tables as the migrations make them are the tables their projections
define (a rebuild creates fresh ones from those definitions and swaps them in): the same
columns, types and nullability, on SQLite and on PostgreSQL."""

from __future__ import annotations

from typing import Any

from ledger import Database
from projections.store import ALL


def _columns(db: Database, conn: Any, table: str) -> list[tuple[str, str, bool]]:
    if db.is_postgres:
        rows = conn.execute(
            "SELECT column_name AS name, data_type AS type, is_nullable = 'YES' AS nullable "
            "FROM information_schema.columns WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            (db.schema, table),
        ).fetchall()
        return [(r["name"], r["type"], r["nullable"]) for r in rows]
    rows = conn.execute(f"PRAGMA table_info({table})").fetchall()
    return [(r["name"], r["type"].upper(), not r["notnull"] and not r["pk"]) for r in rows]


def test_migrated_read_models_match_their_definitions(database_url: str) -> None:
    db = Database.from_url(database_url)
    conn = db.connect()
    try:
        for projection in ALL:
            fresh = {logical: f"{logical}_fresh" for logical in projection.tables}
            cur = conn.cursor()
            projection.create(db, cur, fresh, "fresh")
            for logical, physical in fresh.items():
                assert _columns(db, conn, logical) == _columns(db, conn, physical), logical
                cur.execute(f"DROP TABLE {physical}")
    finally:
        conn.close()
