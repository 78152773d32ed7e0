"""A database that release 0.1.0 created and used upgrades in place, with no loss.

The databases are real 0.1.0 ones, made by that release's own code
(``make_release_0_1_0.py``): users, an invitation, keys (one capped, one disabled),
grants, plain, streamed, translated and failed calls with cache tokens, a projection
rebuild, and a hold whose process died.
"""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal
from pathlib import Path

import httpx
import psycopg
import pytest

from ledger import Database, Ledger, SchemaNotCurrent
from ledger.chain import GENESIS, check
from ledger.log import EventLog
from ledger.migrations import HEAD, status, upgrade
from projections.verify import verify
from tests.conftest import POSTGRES, fresh_database
from tests.fakes.upstream import FakeUpstream
from tests.gateway import start, wait_until

HERE = Path(__file__).parent
EXPECTED = json.loads((HERE / "release_0_1_0.expected.json").read_text())


def load(backend: str, url: str) -> None:
    dump = (HERE / f"release_0_1_0.{backend}.sql").read_text()
    db = Database.from_url(url)
    if backend == "sqlite":
        conn = sqlite3.connect(db.path)
        conn.executescript(dump)
        conn.close()
        return
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(dump.replace("__SCHEMA__", db.schema))


def counts(db: Database) -> dict[str, int]:
    events = "tokensea_events" if db.is_postgres else "stored_events"
    conn = db.connect()
    try:
        return {table: int(conn.execute(f"SELECT COUNT(*) AS n FROM {table}").fetchone()["n"])
                for table in (events, "ts_users", "ts_keys", "ts_holds", "proj_request_logs")}
    finally:
        conn.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_release_0_1_0_database_upgrades_in_place(backend: str, tmp_path: Path, fake: FakeUpstream) -> None:
    expected = EXPECTED[backend]
    with fresh_database(backend, tmp_path) as url:
        load(backend, url)
        db = Database.from_url(url)
        before = counts(db)
        with pytest.raises(SchemaNotCurrent, match="tokensea db upgrade"):
            Ledger(db)
        assert status(db).current is None
        assert upgrade(db)[-1] == HEAD
        assert counts(db) == before  # nothing lost, nothing added
        assert _verified(db) == []
        assert _chained(db) == before[_events(db)]  # the migration chained every event, in order

        gateway = start(url, fake, tmp_path, workers=1)  # serve upgrades nothing more, and recovers the dead hold
        try:
            with gateway.client() as http:
                token = http.post("/api/auth/login", json={"username": "alice", "password": "password1"}).json()["token"]
            alice = expected["users"]["alice"]
            me = gateway.me(token)
            assert (me["quota"], me["usedQuota"], me["requestCount"]) == (alice["quota"], alice["usedQuota"], 7)
            with gateway.client(token) as http:
                keys = {k["name"]: k for k in http.get("/api/tokens").json()["items"]}
            for name, key in expected["keys"].items():
                for field in ("id", "keyPrefix", "quota", "status", "usedQuota", "lastUsedAt"):
                    assert keys[name][field] == key[field], (name, field)
            # The hold of the process that died under 0.1.0 is settled as interrupted, at no charge.
            settled = wait_until(lambda: (found := gateway.me(token))["requestCount"] == 8 and found, timeout=30)
            assert settled["usedQuota"] == alice["usedQuota"]
            # A key issued by 0.1.0 still works, and is billed.
            fresh_key, _ = gateway.key(token, name="after-upgrade")
            body = {"model": "gpt-test", "max_tokens": 20, "messages": [{"role": "user", "content": "hello"}]}
            answer = httpx.post(f"{gateway.url}/v1/chat/completions", json=body, timeout=30,
                                headers={"authorization": f"Bearer {fresh_key}"})
            assert answer.status_code == 200, answer.text
            after = gateway.settled(token, 9)
            assert Decimal(after["usedQuota"]) > Decimal(alice["usedQuota"])
        finally:
            gateway.stop()
        assert _verified(db) == []
        assert counts(db)["ts_holds"] == 0
        assert _chained(db) == counts(db)[_events(db)] > before[_events(db)]  # and the new events chain on


def _events(db: Database) -> str:
    return "tokensea_events" if db.is_postgres else "stored_events"


def _chained(db: Database) -> int:
    """How many events the stored chain covers, each hash recomputed from the genesis (the
    test fails at the first that disagrees)."""
    events = EventLog(db, read_only=True)
    try:
        previous, position, count = GENESIS, 0, 0
        while batch := events.read_chained(position, 100):
            assert check(previous, batch) is None, f"the chain breaks after position {position}"
            previous, position, count = batch[-1][2], batch[-1][0], count + len(batch)
        assert events.head_hash() == (position, previous)
        return count
    finally:
        events.close()


def _verified(db: Database) -> list[str]:
    events = EventLog(db)
    try:
        return verify(db, events)
    finally:
        events.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_hosts_starting_together_migrate_once(backend: str, tmp_path: Path) -> None:
    """Four processes upgrade one empty database at once (as `serve` does on every host at
    start): the lock makes them take turns, one applies everything, the rest nothing."""
    import multiprocessing

    with fresh_database(backend, tmp_path) as url:
        context = multiprocessing.get_context("spawn")
        with context.Pool(4) as pool:
            applied = pool.map(_upgrade, [url] * 4)
        assert sorted(len(versions) for versions in applied) == [0, 0, 0, int(HEAD)]
        assert status(Database.from_url(url)).pending == []


def _upgrade(url: str) -> list[str]:
    return upgrade(Database.from_url(url))


def test_the_head_constant_names_the_newest_migration() -> None:
    """Workers check the version without loading Alembic: its constant must be the head."""
    from alembic.script import ScriptDirectory

    from ledger.migrations import _config

    assert ScriptDirectory.from_config(_config(Database.from_url("sqlite:///unused.db"))).get_current_head() == HEAD
