"""Shared fixtures.

- ``database_url``: a fresh database per test, migrated to this release's schema, on
  SQLite (a new file) and PostgreSQL (a new schema in the ``test`` database on
  127.0.0.1:5432, dropped afterwards; set ``TOKENSEA_TEST_POSTGRES`` to point elsewhere).
  Without a reachable PostgreSQL its cases are skipped, with the reason, unless
  ``TOKENSEA_REQUIRE_POSTGRES=1`` (set by ``.ci/run``) makes that a failure.
- ``fake``: one fake upstream per session (``tests/fakes/upstream.py``).
- ``gateway``: ``tokensea serve`` with 2 workers, one per test module and backend.
- ``unique``: a fresh username, so tests sharing a gateway stay apart.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from ledger import Database
from ledger.migrations import upgrade
from tests.fakes.upstream import FakeUpstream
from tests.gateway import Gateway, start

POSTGRES = os.environ.get("TOKENSEA_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@functools.cache
def _postgres_unreachable() -> str | None:
    """Why PostgreSQL cannot be used (None if it can); asked once, when first needed."""
    try:
        psycopg.connect(POSTGRES, connect_timeout=3).close()
    except psycopg.Error as exc:
        return f"PostgreSQL is not reachable at {POSTGRES} ({str(exc).strip().splitlines()[0]})"
    return None


def require_postgres() -> None:
    """Skip the calling test without PostgreSQL, or fail it where CI requires PostgreSQL."""
    reason = _postgres_unreachable()
    if reason is None:
        return
    if os.environ.get("TOKENSEA_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"{reason}, and TOKENSEA_REQUIRE_POSTGRES=1")
    pytest.skip(f"{reason}: start it, or point TOKENSEA_TEST_POSTGRES at one")


@contextmanager
def fresh_database(backend: str, directory: Path) -> Iterator[str]:
    """The URL of an empty database on ``backend`` (no schema yet), removed afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{directory / 'tokensea.db'}"
        return
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:16]}"
    try:
        yield f"{POSTGRES}?schema={schema}"
    finally:
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path) as url:
        upgrade(Database.from_url(url))
        yield url


@pytest.fixture(scope="session")
def fake() -> Iterator[FakeUpstream]:
    upstream = FakeUpstream().start()
    yield upstream
    upstream.stop()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def gateway(request: pytest.FixtureRequest, fake: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    directory = tmp_path_factory.mktemp(f"gateway-{request.param}")
    with fresh_database(request.param, directory) as url:
        running = start(url, fake, directory, workers=2)
        try:
            yield running
        finally:
            running.stop()


@pytest.fixture
def unique() -> str:
    return "u" + uuid.uuid4().hex[:12]
