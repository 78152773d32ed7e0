"""One module per migration, applied in order by Alembic (``ledger.migrations``)."""
