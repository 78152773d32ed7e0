from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger import Database
from ledger.migrations import upgrade
from tests.conftest import fresh_database


@pytest.fixture
def schema_url(tmp_path: Path) -> Iterator[str]:
    """A fresh PostgreSQL schema, migrated: these tests need real processes on a real server."""
    with fresh_database("postgres", tmp_path) as url:
        upgrade(Database.from_url(url))
        yield url
