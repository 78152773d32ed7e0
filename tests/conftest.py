"""Shared fixtures: a fresh database on each backend, per test.

``database_url`` is parametrized over SQLite (a new file) and PostgreSQL (a new schema
in the ``test`` database on 127.0.0.1:5432, dropped afterwards). Set
``TOKENSEA_TEST_POSTGRES`` to point elsewhere.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

POSTGRES = os.environ.get("TOKENSEA_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def _drop_schema(schema: str) -> None:
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'tokensea.db'}"
        return
    schema = f"t_{uuid.uuid4().hex[:16]}"
    yield f"{POSTGRES}?schema={schema}"
    _drop_schema(schema)
