"""Processes: a worker or the projection process killed with -9 is replaced, and the log
says so; the metrics folder a server makes in the temp dir goes away with it, and a
killed server's is cleared at the next start, never a live one's (issue #20: a dead
worker stayed dead, and every start left a tokensea-metrics-* folder behind)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import fresh_database
from tests.fakes.upstream import FakeUpstream
from tests.gateway import Gateway, start, wait_until


def sanic_processes(gateway: Gateway) -> dict[str, int]:
    """The gateway's children by Sanic process name (each carries SANIC_WORKER_NAME)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        parent = next((line.split()[1] for line in status.splitlines() if line.startswith("PPid:")), "")
        if parent != str(gateway.process.pid) or "State:\tZ" in status:
            continue
        for variable in environ:
            if variable.startswith(b"SANIC_WORKER_NAME="):
                found[variable.partition(b"=")[2].decode()] = int(entry.name)
    return found


@pytest.fixture(params=["sqlite", "postgres"])
def running(request: pytest.FixtureRequest, fake: FakeUpstream, tmp_path: Path) -> Iterator[Gateway]:
    temp = tmp_path / "temp"
    temp.mkdir()
    with fresh_database(request.param, tmp_path) as url:
        # No PROMETHEUS_MULTIPROC_DIR: the server makes its own folder in TMPDIR.
        gateway = start(url, fake, tmp_path, workers=2, env={"PROMETHEUS_MULTIPROC_DIR": "", "TMPDIR": str(temp)})
        try:
            yield gateway
        finally:
            gateway.stop()


def test_a_killed_worker_and_projection_process_are_replaced(running: Gateway, unique: str) -> None:
    before = wait_until(lambda: (found := sanic_processes(running)) and len(found) == 3 and found)
    assert set(before) == {"Sanic-Server-0-0", "Sanic-Server-1-0", "Sanic-TokenSeaProjections-0"}, before
    token, key, _ = running.funded(unique, "100")

    for name in ("Sanic-Server-0-0", "Sanic-TokenSeaProjections-0"):
        os.kill(before[name], signal.SIGKILL)
        after = wait_until(lambda name=name: (found := sanic_processes(running)).get(name) not in (None, before[name])
                           and found, timeout=60)
        assert set(after) == set(before)
        replaced = f"process {name} replaced: pid {after[name]} took over from pid {before[name]}"
        wait_until(lambda replaced=replaced: replaced in running.logs(), timeout=30)
        assert f"process {name} (pid {before[name]}) died with exit code -9" in running.logs()

    # Both workers serve (fresh connections land on either), and the new projection
    # process follows the ledger: a grant made now shows in the balance.
    body = {"model": "gpt-test", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    for _ in range(10):
        answer = httpx.post(f"{running.url}/v1/chat/completions", json=body, timeout=30,
                            headers={"authorization": f"Bearer {key}", "connection": "close"})
        assert answer.status_code == 200, answer.text
    running.grant(running.me(token)["id"], "5")
    wait_until(lambda: running.me(token)["quota"] == "105", timeout=30)


def _metrics_folders(temp: Path) -> list[Path]:
    return sorted(temp.glob("tokensea-metrics-*"))


def test_the_metrics_folder_is_removed_at_stop_and_a_dead_servers_at_start(fake: FakeUpstream, tmp_path: Path) -> None:
    temp = tmp_path / "temp"
    temp.mkdir()
    host = socket.gethostname()
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                              check=True)
    dead = temp / f"tokensea-metrics-{host}-{finished.stdout.strip()}-abc123"  # a killed server's
    live = temp / f"tokensea-metrics-{host}-{os.getpid()}-def456"  # a running one's (this process)
    other_host = temp / f"tokensea-metrics-elsewhere-{finished.stdout.strip()}-ghi789"
    legacy = temp / "tokensea-metrics-k2j3h4g5"  # an older release's: no owner in the name
    for folder in (dead, live, other_host, legacy):
        folder.mkdir()
        (folder / "counter_1.db").write_bytes(b"x")

    gateway = start(f"sqlite:///{tmp_path / 'tokensea.db'}", fake, tmp_path, workers=2,
                    env={"PROMETHEUS_MULTIPROC_DIR": "", "TMPDIR": str(temp)})
    try:
        # Both workers up before the stop: Sanic ignores a stop that lands while a worker starts.
        wait_until(lambda: gateway.logs().count('"Worker ready') >= 2, timeout=60)
        assert httpx.get(f"{gateway.url}/metrics", timeout=10).status_code == 200
        folders = _metrics_folders(temp)
        own = [f for f in folders if f.name.startswith(f"tokensea-metrics-{host}-{gateway.process.pid}-")]
        assert len(own) == 1 and any(own[0].iterdir())
        assert not dead.exists()
        assert live.exists() and other_host.exists() and legacy.exists()
    finally:
        gateway.stop()
    assert gateway.process.returncode == 0
    assert _metrics_folders(temp) == sorted([live, other_host, legacy])
