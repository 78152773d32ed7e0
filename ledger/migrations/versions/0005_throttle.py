"""``ts_throttle``: login and registration attempts per subject, shared by every worker
and host (``edge.counters``). Operational, not part of the ledger: a row is a digest of
its subject, a window's end (Unix milliseconds) and a count; rows expire with their
window and are deleted by the edge.
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.get_bind().exec_driver_sql(
        """CREATE TABLE IF NOT EXISTS ts_throttle (
            subject TEXT PRIMARY KEY,
            window_end BIGINT NOT NULL,
            hits INTEGER NOT NULL
        )"""
    )
