from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import fresh_database


@pytest.fixture
def schema_url(tmp_path: Path) -> Iterator[str]:
    """A fresh PostgreSQL schema: these tests need real processes on a real server."""
    with fresh_database("postgres", tmp_path) as url:
        yield url
