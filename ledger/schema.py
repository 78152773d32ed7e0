"""The ledger's own tables, beside eventsourcing's event table. Their definitions are the
versioned migrations in ``ledger/migrations`` (``tokensea db upgrade``); this module keeps
what the running ledger does to them.

They are indexes of the events, written in the same transaction as the events they
derive from (see ``ledger.effects``), plus two operational tables:

- ``ts_users``, ``ts_keys``: who exists, unique usernames, invite codes and key
  digests, status, and the running totals admission needs (granted, used, held).
  Every column is a fold of the events; ``tokensea ledger verify`` recomputes them.
- ``ts_holds``: one row per admitted, not yet settled request (the reservation).
- ``ts_settled``: an inbox of charges not yet folded into their user's and key's
  ``used`` and ``held``. A charge writes here instead of updating the account rows, so
  a charge's transaction (which waits for its fsync) never holds the locks admission
  needs; admission folds the inbox into the rows it has locked anyway. So an account's
  ``used`` is the row's plus its pending ``cost``s, its ``held`` the row's minus its
  pending ``released`` amounts, and ``held`` always equals the sum of its holds.
- ``ts_instances``: one row per running edge process, with a heartbeat, so that
  recovery can tell a dead process's holds from a live one's.
"""

from __future__ import annotations

from typing import Any

from ledger.database import Database

# Tables rewritten by every request: a hold is inserted and deleted, two inbox rows are
# inserted and deleted, the account rows are updated per batch. Autovacuum visits a
# database once a minute at best, and until it does each lookup wades through the dead
# row versions of the last minute (measured: the inbox and hold statements ran 3x slower
# after 10 s of load). A VACUUM of these small tables takes milliseconds. It never
# truncates them: that would take an exclusive lock, and invalidate the cached plans of
# every session using the table, each time an idle deployment's holds table empties.
_CHURNING_TABLES = "ts_holds, ts_settled, ts_users, ts_keys"


def vacuum_churning_tables(db: Database, conn: Any) -> None:
    """PostgreSQL: reclaim the dead rows of the per-request tables (``conn`` in
    autocommit). Skips a table another process is vacuuming; a no-op on SQLite."""
    if db.is_postgres:
        conn.execute(f"VACUUM (SKIP_LOCKED, TRUNCATE false) {_CHURNING_TABLES}")
