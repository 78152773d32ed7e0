"""Alembic's environment: the connection comes from ``ledger.migrations.upgrade``, which
holds the migration lock; each migration commits in its own transaction."""

from alembic import context

from ledger.migrations import VERSION_TABLE

context.configure(
    connection=context.config.attributes["connection"],
    version_table=VERSION_TABLE,
    transaction_per_migration=True,
)
with context.begin_transaction():
    context.run_migrations()
