"""One fake upstream per session; one gateway per test module and database backend."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import POSTGRES, _drop_schema
from tests.fakes.upstream import FakeUpstream
from tests.gateway import Gateway, start


@pytest.fixture(scope="session")
def fake() -> Iterator[FakeUpstream]:
    upstream = FakeUpstream().start()
    yield upstream
    upstream.stop()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def gateway(request: pytest.FixtureRequest, fake: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    directory: Path = tmp_path_factory.mktemp(f"gateway-{request.param}")
    schema = None
    if request.param == "sqlite":
        url = f"sqlite:///{directory / 'tokensea.db'}"
    else:
        schema = f"e2e_{uuid.uuid4().hex[:12]}"
        url = f"{POSTGRES}?schema={schema}"
    running = start(url, fake, directory, workers=2)
    yield running
    running.stop()
    if schema:
        _drop_schema(schema)


@pytest.fixture
def unique() -> str:
    """A fresh username: tests share a gateway and stay apart by user."""
    return "u" + uuid.uuid4().hex[:12]
