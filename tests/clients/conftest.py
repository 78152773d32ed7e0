"""The real clients, pinned in ``package.json`` / ``package-lock.json`` here, installed
with ``npm ci`` into this folder's git-ignored ``node_modules`` the first time a test
needs them (again when the lock changes). Without npm the tests skip, unless
``TOKENSEA_REQUIRE_CLIENTS=1`` (set by ``.ci/run``) makes that a failure.

One gateway (SQLite, 2 workers) serves the package's tests. Its catalogue routes model
names the clients know (``claude-sonnet-4-6``, ``gpt-4.1``) to the fake upstream, so
each client sends what it sends for a model it recognizes."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import fresh_database
from tests.fakes.upstream import FakeUpstream
from tests.gateway import Gateway, start

HERE = Path(__file__).parent
BIN = HERE / "node_modules" / ".bin"
STAMP = HERE / "node_modules" / ".tokensea-lock-sha256"

MODELS = """
[[models]]
id = "claude-sonnet-4-6"
provider = "anthropic"
upstream_model = "claude-upstream"
input = "300"
output = "1500"
cache_read = "30"
cache_write = "375"

[[models]]
id = "gpt-4.1"
provider = "openai"
upstream_model = "gpt-upstream"
input = "100"
output = "300"
cache_read = "10"
cache_write = "125"
"""


@pytest.fixture(scope="session")
def clients() -> Path:
    """The folder of the clients' executables (``codex``, ``claude``)."""
    npm = shutil.which("npm")
    if npm is None:
        if os.environ.get("TOKENSEA_REQUIRE_CLIENTS") == "1":
            pytest.fail("npm is not installed, and TOKENSEA_REQUIRE_CLIENTS=1 requires the real-client tests")
        pytest.skip("npm is not installed: the real-client tests need Node.js")
    wanted = hashlib.sha256((HERE / "package-lock.json").read_bytes()).hexdigest()
    if not STAMP.is_file() or STAMP.read_text() != wanted:
        # No install script runs but the one reviewed here: Claude Code's, which puts its
        # native binary (an optional dependency) in place of a stub, as its stub says to.
        for step in ([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
                     ["node", "node_modules/@anthropic-ai/claude-code/install.cjs"]):
            done = subprocess.run(step, cwd=HERE, capture_output=True, text=True, timeout=900, check=False)
            assert done.returncode == 0, f"{' '.join(step)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        STAMP.write_text(wanted)
    return BIN


@pytest.fixture(scope="package")
def gateway(fake: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    directory = tmp_path_factory.mktemp("clients")
    with fresh_database("sqlite", directory) as url:
        running = start(url, fake, directory, workers=2, extra=MODELS)
        try:
            yield running
        finally:
            running.stop()
