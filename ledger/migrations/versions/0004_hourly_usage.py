"""The hourly usage read model (``projections.usage.HourlyUsage``): the last 24 hours'
statistics and chart from a few rows per hour, never from the request log. Its position
starts at 0, so the projection process folds the whole ledger into it once."""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_TYPES = {
    "postgresql": {"uuid": "uuid", "money": "numeric"},
    "sqlite": {"uuid": "TEXT", "money": "TEXT"},
}


def upgrade() -> None:
    bind = op.get_bind()
    bind.exec_driver_sql(
        "CREATE TABLE proj_usage_hourly (user_id {uuid} NOT NULL, hour TEXT NOT NULL, model TEXT NOT NULL, "
        "requests INTEGER NOT NULL, failed INTEGER NOT NULL, prompt_tokens BIGINT NOT NULL, "
        "completion_tokens BIGINT NOT NULL, cache_read_tokens BIGINT NOT NULL, cache_write_tokens BIGINT NOT NULL, "
        "cost {money} NOT NULL, PRIMARY KEY (user_id, hour, model))".format(**_TYPES[bind.dialect.name])
    )
