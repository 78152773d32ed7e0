"""Make the release-0.1.0 databases that ``test_upgrade.py`` upgrades (run by hand, once).

It must run with release 0.1.0's code (commit ee5c177) first on the path, so that the
gateway, the CLI and the projections that fill the database are that release's own:

    git worktree add /tmp/v010 ee5c177
    PYTHONPATH=/tmp/v010 python tests/upgrade/make_release_0_1_0.py tests/upgrade

It runs 0.1.0's ``tokensea serve`` against its fake upstream, on SQLite and on
PostgreSQL, and makes real traffic: users (one invited), keys (one with a quota, one
disabled), grants, plain, streamed, translated and failed calls, with cache tokens; a
projection rebuild (so the read models carry rebuilt table and index names); and one
hold left by a process that then died. It writes each database as SQL
(``release_0_1_0.{sqlite,postgres}.sql``, the schema name as ``__SCHEMA__``) and what
0.1.0's own API answered about it (``release_0_1_0.expected.json``).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import httpx
import psycopg

from tests.fakes.upstream import FakeUpstream
from tests.gateway import start, wait_until

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def traffic(gateway, out: dict) -> None:
    inviter_token, inviter = gateway.register("inviter")
    gateway.grant(inviter["id"], "500")
    token, user = gateway.register("alice", inviteCode=inviter["inviteCode"])
    gateway.grant(user["id"], "1000")
    wait_until(lambda: float(gateway.me(token)["quota"]) >= 1100)
    key, _ = gateway.key(token, name="laptop")
    capped, _ = gateway.key(token, name="capped", quota="50")
    _, spare_key = gateway.key(token, name="spare")
    with gateway.client(token) as http:
        assert http.patch(f"/api/tokens/{spare_key['id']}", json={"status": "disabled"}).status_code == 200
    chat = {"model": "gpt-test", "max_tokens": 50, "messages": [{"role": "user", "content": "hello there !cache=3"}]}
    message = {"model": "claude-test", "max_tokens": 50, "messages": [{"role": "user", "content": "hi !cachewrite=2"}]}
    with httpx.Client(base_url=gateway.url, timeout=30) as http:
        for _ in range(3):
            assert http.post("/v1/chat/completions", json=chat, headers={"authorization": f"Bearer {key}"}).status_code == 200
        assert http.post("/v1/messages", json=message, headers={"x-api-key": capped}).status_code == 200
        assert http.post("/v1/chat/completions", json={**chat, "model": "claude-test"},
                         headers={"authorization": f"Bearer {key}"}).status_code == 200
        streamed = http.post("/v1/chat/completions", json={**chat, "stream": True}, headers={"authorization": f"Bearer {key}"})
        assert streamed.status_code == 200
        failed = {**chat, "messages": [{"role": "user", "content": "x !status=500"}]}
        assert http.post("/v1/chat/completions", json=failed, headers={"authorization": f"Bearer {key}"}).status_code >= 500
    me = gateway.settled(token, 7)
    out["users"] = {"inviter": gateway.me(inviter_token), "alice": me}
    with gateway.client(token) as http:
        out["keys"] = {k["name"]: k for k in http.get("/api/tokens").json()["items"]}
        out["logs"] = http.get("/api/usage/logs", params={"pageSize": 100}).json()["total"]


def stuck_hold(url: str) -> None:
    """A hold whose process died: 0.1.0 never settled it; the new release recovers it."""
    from ledger import Database, Hold, Ledger
    from tests.ledger.helpers import facts

    ledger = Ledger(Database.from_url(url), serving=True)
    row = ledger.read(lambda q: q.user_by_username("alice"))
    key = next(k for k in ledger.read(lambda q: q.list_keys(row["user_id"], 0, 10))[0] if k["name"] == "laptop")
    from domain.money import Money

    ledger.admit(Hold(facts("req_stuck_0_1_0", row["user_id"], key["key_id"]), Money(3), ledger.instance_id))
    ledger._stop.set()  # its heartbeat stops, as a killed process's would
    ledger._maintenance.join(5)


def main(out_dir: Path) -> None:
    import ledger

    assert not hasattr(ledger, "OutputBound"), "run with release 0.1.0 first on PYTHONPATH"
    fake = FakeUpstream().start()
    expected = {}
    try:
        for backend in ("sqlite", "postgres"):
            directory = Path(tempfile.mkdtemp())
            schema = f"v010_{uuid.uuid4().hex[:8]}"
            url = f"sqlite:///{directory / 'tokensea.db'}" if backend == "sqlite" else f"{POSTGRES}?schema={schema}"
            gateway = start(url, fake, directory, workers=2)
            found: dict = {}
            try:
                traffic(gateway, found)
                rebuilt = gateway.cli("projections", "rebuild")
                assert rebuilt.returncode == 0, rebuilt.stderr
            finally:
                gateway.stop()
            stuck_hold(url)
            time.sleep(0.5)
            expected[backend] = found
            if backend == "sqlite":
                conn = sqlite3.connect(directory / "tokensea.db")
                (out_dir / "release_0_1_0.sqlite.sql").write_text("\n".join(conn.iterdump()) + "\n")
                conn.close()
            else:
                dump = subprocess.run(
                    ["pg_dump", "--inserts", "--no-owner", "--no-privileges", f"--schema={schema}", "-h", "127.0.0.1",
                     "-U", "postgres", "test"], capture_output=True, text=True, check=True,
                ).stdout
                # pg_dump 15.14+ fences its output with psql's \restrict; psycopg runs plain SQL.
                plain = "".join(line for line in dump.splitlines(keepends=True) if not line.startswith("\\"))
                (out_dir / "release_0_1_0.postgres.sql").write_text(plain.replace(schema, "__SCHEMA__"))
                with psycopg.connect(POSTGRES, autocommit=True) as conn:
                    conn.execute(f"DROP SCHEMA {schema} CASCADE")
    finally:
        fake.stop()
    expected["made"] = datetime.now(timezone.utc).isoformat()
    (out_dir / "release_0_1_0.expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
