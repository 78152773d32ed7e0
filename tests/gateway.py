"""Running the real gateway for end-to-end tests: ``tokensea serve`` in a subprocess on
a free port, against a fake upstream, on SQLite or PostgreSQL."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from ledger import Database
from projections.logs import ensure_partitions, month_of
from tests.fakes.upstream import FakeUpstream

OPENAI_KEY = "sk-test-openai-0123456789abcdef"
ANTHROPIC_KEY = "sk-ant-test-0123456789abcdef"
JWT_SECRET = "test-secret-" + "x" * 60
ADMIN_PASSWORD = "admin-password"

# Prices chosen so that exact sums are easy to check by hand (cents per million tokens).
CONFIG = """
signup_quota = "0"
invite_reward = "100"
jwt_ttl_days = 7

[[providers]]
name = "openai"
protocol = "openai"
base_url = "{fake}/openai/v1"
api_key_env = "TS_TEST_OPENAI_KEY"

[[providers]]
name = "anthropic"
protocol = "anthropic"
base_url = "{fake}/anthropic"
api_key_env = "TS_TEST_ANTHROPIC_KEY"

# Reached by host name: aiohttp never keeps cookies set by a bare IP address, and the
# cookie test needs a provider whose cookies a jar would keep.
[[providers]]
name = "backup"
protocol = "openai"
base_url = "{fake_by_name}/backup/v1"
api_key_env = "TS_TEST_OPENAI_KEY"

[[models]]
id = "gpt-test"
provider = "openai"
upstream_model = "gpt-upstream"
input = "100"
output = "300"
cache_read = "10"
cache_write = "125"

[[models]]
id = "claude-test"
provider = "anthropic"
upstream_model = "claude-upstream"
input = "300"
output = "1500"
cache_read = "30"
cache_write = "375"

[[models]]
id = "gpt-fallback"
provider = "openai"
upstream_model = "gpt-upstream"
input = "100"
output = "300"

[[models]]
id = "gpt-fallback"
provider = "backup"
upstream_model = "gpt-backup"
input = "100"
output = "300"

[[plans]]
id = 1
name = "Starter"
models = ["gpt-test", "claude-test"]
price_multiplier = "0.5"

[server]
login_max_failures = 3
login_max_failures_per_address = 10000  # every test logs in from 127.0.0.1
register_max_per_address = 100000  # and registers from there
cors_origins = ["https://app.example"]
{extra}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(check: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


@dataclass
class Gateway:
    url: str
    database_url: str
    fake: FakeUpstream
    directory: Path
    process: subprocess.Popen[bytes]
    env: dict[str, str]
    log_path: Path
    _admin: str | None = field(default=None, repr=False)

    # -- plumbing ---------------------------------------------------------------------

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def cli(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "edge.cli", "--config", str(self.directory / "tokensea.toml"), *args],
            input=stdin, capture_output=True, text=True, env=self.env, timeout=120, check=False,
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill9(self) -> None:
        """SIGKILL the main process, every worker and the projection process at once."""
        os.killpg(os.getpgid(self.process.pid), signal.SIGKILL)
        self.process.wait()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    # -- accounts ---------------------------------------------------------------------

    def register(self, username: str, password: str = "tide-pool-42", **extra: Any) -> tuple[str, dict[str, Any]]:
        with self.client() as http:
            answer = http.post("/api/auth/register", json={"username": username, "password": password, **extra})
        assert answer.status_code == 201, answer.text
        return answer.json()["token"], answer.json()["user"]

    @property
    def admin(self) -> str:
        if self._admin is None:
            made = self.cli("admin", "create-user", "root", "--password-stdin", "--role", "admin", stdin=ADMIN_PASSWORD + "\n")
            assert made.returncode in (0, 1), made.stderr
            with self.client() as http:
                answer = http.post("/api/auth/login", json={"username": "root", "password": ADMIN_PASSWORD})
            assert answer.status_code == 200, answer.text
            self._admin = answer.json()["token"]
        return self._admin

    def grant(self, user_id: str, cents: str | int) -> None:
        with self.client(self.admin) as http:
            answer = http.post(f"/api/admin/users/{user_id}/grants", json={"amount": str(cents), "reason": "test"})
        assert answer.status_code == 201, answer.text

    def entitle(self, user_id: str, *plans: int) -> None:
        """Give the user these plans (a key binds only to a plan its owner holds)."""
        with self.client(self.admin) as http:
            answer = http.patch(f"/api/admin/users/{user_id}", json={"plans": list(plans)})
        assert answer.status_code == 200, answer.text

    def key(self, token: str, **fields: Any) -> tuple[str, dict[str, Any]]:
        with self.client(token) as http:
            answer = http.post("/api/tokens", json={"name": fields.pop("name", "key"), **fields})
        assert answer.status_code == 201, answer.text
        return answer.json()["key"], answer.json()["apiKey"]

    def me(self, token: str) -> dict[str, Any]:
        with self.client(token) as http:
            answer = http.get("/api/user/self")
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def funded(self, name: str, cents: str | int = "1000", **key_fields: Any) -> tuple[str, str, dict[str, Any]]:
        """A user with ``cents`` of quota (visible to model calls) and a key: (session, key, user)."""
        token, user = self.register(name)
        if key_fields.get("planId") is not None:
            self.entitle(user["id"], key_fields["planId"])
        self.grant(user["id"], cents)
        wait_until(lambda: Decimal(self.me(token)["quota"]) >= Decimal(str(cents)))
        key, _ = self.key(token, **key_fields)
        return token, key, user

    def settled(self, token: str, requests: int) -> dict[str, Any]:
        """The user's profile once the projections show ``requests`` requests."""
        return dict(wait_until(lambda: (me := self.me(token))["requestCount"] >= requests and me))


def start(database_url: str, fake: FakeUpstream, directory: Path, *, workers: int = 1, extra: str = "",
          env: dict[str, str] | None = None, config: str = CONFIG) -> Gateway:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "tokensea.toml").write_text(config.format(fake=fake.url, fake_by_name=fake.url.replace("127.0.0.1", "localhost"), extra=extra))
    port = free_port()
    environment = {
        **os.environ,
        "TOKENSEA_DATABASE_URL": database_url,
        "TS_TEST_OPENAI_KEY": OPENAI_KEY,
        "TS_TEST_ANTHROPIC_KEY": ANTHROPIC_KEY,
        "TOKENSEA_JWT_SECRET": JWT_SECRET,
        "PROMETHEUS_MULTIPROC_DIR": str(directory / f"metrics-{port}"),  # so tests can see each worker's
        **(env or {}),
    }
    environment.pop("TOKENSEA_CONFIG", None)
    log_path = directory / f"gateway-{port}.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "edge.cli", "--config", str(directory / "tokensea.toml"), "serve",
         "--port", str(port), "--workers", str(workers)],
        stdout=log_path.open("wb"), stderr=subprocess.STDOUT, env=environment, cwd=directory,
        start_new_session=True,  # its own process group, so kill -9 can take every process at once
    )
    gateway = Gateway(f"http://127.0.0.1:{port}", database_url, fake, directory, process, environment, log_path)

    def up() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"the gateway exited:\n{gateway.logs()[-4000:]}")
        try:
            return httpx.get(f"{gateway.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(up, timeout=60, interval=0.2)
    return gateway


def backdate_logs(gateway: Gateway, user_id: str, key_id: str, rows: int) -> None:
    """``rows`` request-log rows for one user and key, written straight into the read
    model (an API call per row would take minutes), one a minute from a year ago, the
    oldest first; request ids ``bulk-…``. For tests of reading the log, not of billing:
    the ledger knows nothing of them (``ledger verify`` would say so)."""
    db = Database.from_url(gateway.database_url)
    start = datetime.now(timezone.utc) - timedelta(days=365)
    values = [
        (f"bulk-{uuid.uuid4().hex}", 10**12 + n, uuid.UUID(user_id), uuid.UUID(key_id), "bulk", "gpt-test", "openai",
         "chat", False, 1, 1, 0, 0, Decimal("0.5"), 10, "success", "upstream", start + timedelta(minutes=n))
        for n in range(rows)
    ]
    conn = db.connect()
    try:
        with db.transaction(conn) as cur:
            ensure_partitions(db, cur, "proj_request_logs", {month_of(row[-1]) for row in values})
            cur.executemany(db.sql(
                "INSERT INTO proj_request_logs (request_id, position, user_id, key_id, key_name, model, provider, "
                "endpoint, stream, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost, latency_ms, "
                "status, usage_source, created_at) VALUES (" + ", ".join(["%s"] * 18) + ")"), values)
    finally:
        conn.close()
