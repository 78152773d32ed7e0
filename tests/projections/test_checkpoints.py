"""Checkpoints, and rebuild and verify from them, on SQLite and PostgreSQL: the same
tables as from genesis, only the new events replayed, a tampered checkpoint refused; and
the request log's retention, which keeps balances and usage exact."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson
import pytest

from domain.charges import Charge, RequestStatus, UsageSource
from domain.grants import GrantReason
from domain.keys import KeyStatus
from domain.money import Money
from domain.usage import TokenUsage
from ledger import Database, Hold, Ledger, commands
from projections import retention
from projections.checkpoints import digest_of
from projections.logs import partitions
from projections.rebuild import rebuild
from projections.scheduler import rebuild_from_checkpoint
from projections.store import ALL, Runner, by_name
from projections.verify import audit, checkpoint, verify
from tests.ledger.helpers import PRICE, facts, new_key, register

DERIVED = {
    "proj_user_balances": "user_id", "proj_key_balances": "key_id", "proj_request_logs": "request_id",
    "proj_usage_daily": "user_id, day, model", "proj_usage_hourly": "user_id, hour, model",
}


@pytest.fixture
def ledger(database_url: str) -> Iterator[Ledger]:
    opened = Ledger(Database.from_url(database_url))
    yield opened
    opened.close()


def _charge(ledger: Ledger, request_id: str, user: UUID, key: UUID, tokens: int, at: datetime | None = None,
            status: RequestStatus = RequestStatus.SUCCESS) -> None:
    ledger.admit(Hold(facts(request_id, user, key), Money(5), ledger.instance_id))
    made = facts(request_id, user, key)
    if at is not None:
        made = dataclasses.replace(made, requested_at=at)
    ledger.settle(Charge.record(made, TokenUsage(output=tokens), PRICE, Decimal(1), reserved=Money(5), latency_ms=3,
                                status=status, usage_source=UsageSource.UPSTREAM))


def _traffic(ledger: Ledger, prefix: str, users: tuple[UUID, ...], keys: tuple[UUID, ...], count: int) -> None:
    for n in range(count):
        status = RequestStatus.ERROR if n % 5 == 0 else RequestStatus.SUCCESS
        _charge(ledger, f"{prefix}{n}", users[n % len(users)], keys[n % len(keys)], 13 * n + 1, status=status)


def _tables(ledger: Ledger) -> dict[str, list[dict[str, Any]]]:
    conn = ledger.db.connect()
    try:
        cur = conn.cursor()
        found = {}
        for table, order in DERIVED.items():
            cur.execute(f"SELECT * FROM {table} ORDER BY {order}")
            found[table] = [dict(row) for row in cur.fetchall()]
        return found
    finally:
        conn.close()


def _write(ledger: Ledger, statement: str, params: list[Any]) -> None:
    conn = ledger.db.connect()
    try:
        with ledger.db.transaction(conn) as cur:
            cur.execute(ledger.db.sql(statement), params)
    finally:
        conn.close()


def _populated(ledger: Ledger) -> tuple[tuple[UUID, ...], tuple[UUID, ...]]:
    alice, bob = register(ledger, "alice", quota="900"), register(ledger, "bob", quota="900")
    keys = (new_key(ledger, alice), new_key(ledger, bob), new_key(ledger, alice, quota="400", name="capped"))
    _traffic(ledger, "a", (alice, bob, alice), keys, 30)
    Runner(ledger.db, ledger.log).catch_up()
    return (alice, bob), keys


def test_rebuild_and_verify_from_a_checkpoint_equal_genesis(ledger: Ledger) -> None:
    (alice, bob), keys = _populated(ledger)
    made, report = checkpoint(ledger.db, ledger.log)
    assert report.lines == [] and made is not None and made.position == ledger.log.head()
    # More traffic of every kind after it: a new user and key, a grant, a changed key, charges.
    carol = register(ledger, "carol", quota="50")
    carol_key = new_key(ledger, carol)
    ledger.run(commands.GrantQuota(alice, Money("0.75"), GrantReason.ADMIN, "", "admin:late"))
    ledger.run(commands.UpdateKey(alice, keys[2], quota=Money(450), status=KeyStatus.DISABLED))
    _traffic(ledger, "b", (alice, bob, carol), (keys[0], keys[1], carol_key), 25)
    Runner(ledger.db, ledger.log).catch_up()
    head = ledger.log.head()

    since = audit(ledger.db, ledger.log)
    assert since.lines == [] and since.base is not None and since.base.id == made.id
    assert (since.first, since.last) == (made.position + 1, head)
    assert verify(ledger.db, ledger.log, full=True) == []

    base, replayed = rebuild_from_checkpoint(ledger.db, ledger.log)
    assert base is not None and base.id == made.id
    assert replayed == head - made.position  # only the events after the checkpoint
    from_checkpoint = _tables(ledger)
    assert rebuild(ledger.db, ledger.log, ALL) == head
    assert _tables(ledger) == from_checkpoint
    assert verify(ledger.db, ledger.log) == [] and verify(ledger.db, ledger.log, full=True) == []

    # one projection alone, from the checkpoint, then the runner goes on where it stopped
    rebuild_from_checkpoint(ledger.db, ledger.log, projections=(by_name("request_logs"),))
    _charge(ledger, "after", bob, keys[1], 99)
    Runner(ledger.db, ledger.log).catch_up()
    assert verify(ledger.db, ledger.log) == []


def test_a_second_checkpoint_starts_from_the_first(ledger: Ledger) -> None:
    (alice, bob), keys = _populated(ledger)
    first, _ = checkpoint(ledger.db, ledger.log)
    assert checkpoint(ledger.db, ledger.log)[0] is None  # nothing new: nothing recorded
    _traffic(ledger, "b", (alice, bob), keys[:2], 8)
    Runner(ledger.db, ledger.log).catch_up()
    second, report = checkpoint(ledger.db, ledger.log)
    assert first is not None and second is not None
    assert report.base is not None and report.base.id == first.id and report.first == first.position + 1
    assert audit(ledger.db, ledger.log).base.id == second.id  # type: ignore[union-attr]


def test_a_tampered_checkpoint_is_refused_and_never_used(ledger: Ledger) -> None:
    (alice, _), _ = _populated(ledger)
    made, _ = checkpoint(ledger.db, ledger.log)
    assert made is not None
    state = orjson.loads(made.state)
    for key, row in state["tables"]["user_balances"]:
        if key == str(alice):
            row["used"] = "0"  # as if alice had spent nothing
    forged = orjson.dumps(state, option=orjson.OPT_SORT_KEYS)

    # the state changed, its digest not: refused, and verification starts at genesis
    _write(ledger, "UPDATE proj_checkpoints SET state = %s WHERE id = %s", [forged, made.id])
    report = audit(ledger.db, ledger.log)
    assert report.base is None
    assert report.lines == [f"checkpoint {made.id} at position {made.position} refused: "
                            "its digest does not match its contents"]
    base, replayed = rebuild_from_checkpoint(ledger.db, ledger.log)
    assert base is None and replayed == ledger.log.head()
    # the tables are right; only the checkpoint is not, and it is named
    forged_line = f"checkpoint {made.id} at position {made.position} does not match the events"
    assert verify(ledger.db, ledger.log, full=True) == [forged_line]
    assert checkpoint(ledger.db, ledger.log)[0] is None  # a difference (the refusal): no new checkpoint

    # a forger who also recomputed the digest: verify --full names the checkpoint, and
    # verifying from it finds the live tables disagree with what it claims
    _write(ledger, "UPDATE proj_checkpoints SET digest = %s WHERE id = %s",
           [digest_of(made.position, made.chain, forged), made.id])
    assert verify(ledger.db, ledger.log, full=True) == [forged_line]
    assert any(line.startswith(f"ts_users {alice} used: events say") or
               line.startswith(f"proj_user_balances {alice} used") for line in verify(ledger.db, ledger.log))


def test_no_checkpoint_over_differences(ledger: Ledger) -> None:
    _populated(ledger)
    _write(ledger, "UPDATE proj_request_logs SET latency_ms = latency_ms + 1 WHERE request_id = %s", ["a3"])
    made, report = checkpoint(ledger.db, ledger.log)
    assert made is None and report.lines == ["proj_request_logs a3 latency_ms: events say 3, found 4"]


def test_verify_from_a_checkpoint_still_checks_new_request_log_rows(ledger: Ledger) -> None:
    (alice, bob), keys = _populated(ledger)
    checkpoint(ledger.db, ledger.log)
    _traffic(ledger, "b", (alice, bob), keys[:2], 4)
    Runner(ledger.db, ledger.log).catch_up()
    _write(ledger, "UPDATE proj_request_logs SET cost = cost + 1 WHERE request_id = %s", ["b2"])
    assert [line for line in verify(ledger.db, ledger.log) if line.startswith("proj_request_logs b2 cost")]


def test_retention_drops_old_log_rows_and_keeps_money_exact(ledger: Ledger) -> None:
    alice = register(ledger, "alice", quota="900")
    key = new_key(ledger, alice)
    now = datetime.now(timezone.utc)
    ages = {"old1": 400, "old2": 95, "old3": 40, "new1": 10, "new2": 0}
    for request_id, days in ages.items():
        _charge(ledger, request_id, alice, key, 100 + days, at=now - timedelta(days=days))
    Runner(ledger.db, ledger.log).catch_up()
    before = _tables(ledger)
    assert len(before["proj_request_logs"]) == 5

    assert retention.prune(ledger.db, days=30, now=now) == 3
    after = _tables(ledger)
    assert sorted(row["request_id"] for row in after["proj_request_logs"]) == ["new1", "new2"]
    for table in ("proj_user_balances", "proj_key_balances", "proj_usage_daily", "proj_usage_hourly"):
        assert after[table] == before[table], table
    if ledger.db.is_postgres:  # whole months before the cut went as partitions
        conn = ledger.db.connect()
        months = sorted(partitions(ledger.db, conn.cursor(), "proj_request_logs"))
        conn.close()
        cut = now - timedelta(days=30)
        assert all(name >= f"proj_request_logs_y{cut.year:04d}m{cut.month:02d}" for name in months), months
    assert verify(ledger.db, ledger.log) == [] and verify(ledger.db, ledger.log, full=True) == []

    # neither a rebuild nor new events bring the dropped rows back; a deleted recent row is still found
    assert rebuild(ledger.db, ledger.log, ALL) == ledger.log.head()
    _charge(ledger, "new3", alice, key, 7)
    Runner(ledger.db, ledger.log).catch_up()
    assert sorted(row["request_id"] for row in _tables(ledger)["proj_request_logs"]) == ["new1", "new2", "new3"]
    assert verify(ledger.db, ledger.log, full=True) == []
    _write(ledger, "DELETE FROM proj_request_logs WHERE request_id = %s", ["new1"])
    assert verify(ledger.db, ledger.log, full=True) == ["proj_request_logs new1: missing"]


def test_the_cli_checkpoints_verifies_from_it_and_rebuilds(ledger: Ledger) -> None:
    (alice, bob), keys = _populated(ledger)
    env = {"TOKENSEA_DATABASE_URL": ledger.db.url, "PATH": "/usr/bin:/bin"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "edge.cli", *args], capture_output=True, text=True, env=env,
                              check=False)

    made = cli("ledger", "checkpoint")
    assert made.returncode == 0, made.stderr
    recorded = orjson.loads(made.stdout)
    assert recorded["position"] == ledger.log.head()
    _traffic(ledger, "b", (alice, bob), keys[:2], 3)
    Runner(ledger.db, ledger.log).catch_up()
    checked = cli("ledger", "verify")
    assert checked.returncode == 0
    assert (f"positions {recorded['position'] + 1}-{ledger.log.head()} "
            f"(from checkpoint {recorded['checkpoint']} at position {recorded['position']})") in checked.stderr
    assert f"positions 1-{ledger.log.head()} (from genesis)" in cli("ledger", "verify", "--full").stderr
    quick = orjson.loads(cli("projections", "rebuild").stdout)
    assert quick["events"] == ledger.log.head() - recorded["position"]
    assert orjson.loads(cli("projections", "rebuild", "--from-genesis").stdout)["events"] == ledger.log.head()
    _write(ledger, "UPDATE proj_checkpoints SET digest = 'x'", [])
    refused = cli("ledger", "verify")
    assert refused.returncode == 1 and "refused: its digest does not match its contents" in refused.stdout


def test_schedule_settings_are_validated(tmp_path: Any) -> None:
    from edge.settings import SettingsError, load

    config = tmp_path / "tokensea.toml"
    for line in ('rebuild_cron = "every night"', 'checkpoint_cron = "61 * * * *"', "log_retention_days = 0"):
        config.write_text(f"[projections]\n{line}\n")
        with pytest.raises(SettingsError, match="projections"):
            load(str(config))
    config.write_text('[projections]\ncheckpoint_cron = "0 * * * *"\nlog_retention_days = 30\n')
    schedule = load(str(config)).projections.schedule()
    assert (schedule.rebuild_cron, schedule.checkpoint_cron, schedule.log_retention_days) == (
        "0 3 * * *", "0 * * * *", 30)


def test_the_scheduled_rebuild_rebuilds_prunes_then_checkpoints(ledger: Ledger) -> None:
    from projections.scheduler import Schedule, scheduled_rebuild

    (alice, _), keys = _populated(ledger)
    _charge(ledger, "ancient", alice, keys[0], 5, at=datetime.now(timezone.utc) - timedelta(days=60))
    Runner(ledger.db, ledger.log).catch_up()
    scheduled_rebuild(ledger.db, ledger.log, Schedule(log_retention_days=30))
    report = audit(ledger.db, ledger.log)
    assert report.lines == [] and report.base is not None and report.base.position == ledger.log.head()
    assert "ancient" not in {row["request_id"] for row in _tables(ledger)["proj_request_logs"]}
    _charge(ledger, "next", alice, keys[0], 5)
    Runner(ledger.db, ledger.log).catch_up()
    scheduled_rebuild(ledger.db, ledger.log, Schedule())  # the next night starts from that checkpoint
    assert audit(ledger.db, ledger.log).base.position == ledger.log.head()  # type: ignore[union-attr]


def test_a_checkpoint_is_where_every_projection_has_got_to(ledger: Ledger) -> None:
    from projections import checkpoints

    (alice, bob), keys = _populated(ledger)
    applied = ledger.log.head()
    _traffic(ledger, "lag", (alice, bob), keys[:2], 6)  # not applied yet: the runner lags
    made, report = checkpoint(ledger.db, ledger.log)
    assert report.lines == [] and made is not None and made.position == applied < ledger.log.head()
    base, replayed = rebuild_from_checkpoint(ledger.db, ledger.log)
    assert base is not None and replayed == ledger.log.head() - applied
    assert verify(ledger.db, ledger.log) == []

    # a checkpoint beyond the request log's position (made by hand here): its rows in
    # between would be lost by keeping the log in place, so the rebuild starts at genesis
    _traffic(ledger, "more", (alice, bob), keys[:2], 4)
    report = audit(ledger.db, ledger.log)
    checkpoints.record(ledger.db, report.fold, ledger.log.chain_at(report.fold.position) or b"")
    base, replayed = rebuild_from_checkpoint(ledger.db, ledger.log)
    assert base is None and replayed == ledger.log.head()
    assert verify(ledger.db, ledger.log, full=True) == []


def test_verify_follows_the_chain_and_a_checkpoint_over_changed_events_is_refused(ledger: Ledger) -> None:
    (alice, bob), keys = _populated(ledger)
    made, _ = checkpoint(ledger.db, ledger.log)
    assert made is not None and made.chain == ledger.log.chain_at(made.position)
    _traffic(ledger, "b", (alice, bob), keys[:2], 3)
    Runner(ledger.db, ledger.log).catch_up()
    events, position = ("tokensea_events", "notification_id") if ledger.db.is_postgres else ("stored_events", "rowid")
    # rewrite the chain from an event before the checkpoint on, as a forger who recomputed it would
    _write(ledger, f"UPDATE {events} SET chain = %s WHERE {position} = %s", [bytes(32), made.position])
    report = audit(ledger.db, ledger.log)
    assert report.base is None  # refused: started at genesis
    assert report.lines[0] == (f"checkpoint {made.id} at position {made.position} refused: "
                               f"the events up to position {made.position} have changed since")
    assert [line for line in report.lines if line.startswith("ledger chain")] == [
        f"ledger chain: position {made.position}: its hash does not follow from its contents and the hash before it",
        f"ledger chain: position {made.position + 1}: its hash does not follow from its contents "
        "and the hash before it",
    ]
    assert f"checkpoint {made.id} at position {made.position} does not match the events" in verify(
        ledger.db, ledger.log, full=True)


def test_the_request_log_is_compared_a_batch_at_a_time(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    import projections.verify

    monkeypatch.setattr(projections.verify, "PAGE", 4)  # many batches: rows are checked in position ranges
    _populated(ledger)
    assert verify(ledger.db, ledger.log, full=True) == []
    row = next(r for r in _tables(ledger)["proj_request_logs"] if r["request_id"] == "a17")
    _write(ledger, "UPDATE proj_request_logs SET output_tokens = output_tokens + 1 WHERE request_id = %s", ["a17"])
    _write(ledger, "DELETE FROM proj_request_logs WHERE request_id = %s", ["a9"])
    _write(ledger, "UPDATE proj_request_logs SET position = %s WHERE request_id = %s", [10**9, "a20"])
    assert sorted(verify(ledger.db, ledger.log, full=True)) == sorted([
        f"proj_request_logs a17 output_tokens: events say {row['output_tokens']}, found {row['output_tokens'] + 1}",
        "proj_request_logs a9: missing",
        "proj_request_logs a20: missing",  # not where the events put it...
        "proj_request_logs a20: not in the ledger",  # ...but past the last event
    ])


def test_queries_never_see_a_half_rebuilt_log_during_a_rebuild_from_a_checkpoint(ledger: Ledger) -> None:
    import threading

    from projections.queries import LogFilter, ProjectionQueries

    (alice, bob), keys = _populated(ledger)
    checkpoint(ledger.db, ledger.log)
    _traffic(ledger, "b", (alice, bob), keys[:2], 20)  # rows past the checkpoint: replaced by the rebuild
    Runner(ledger.db, ledger.log).catch_up()
    conn = ledger.db.connect()
    expected = ProjectionQueries(ledger.db, conn).count_logs(LogFilter(alice), 1000)
    conn.close()
    stop, seen, failures = threading.Event(), [], []

    def keep_counting() -> None:
        reader = ledger.db.connect()
        try:
            while not stop.is_set():
                seen.append(ProjectionQueries(ledger.db, reader).count_logs(LogFilter(alice), 1000))
        except Exception as exc:  # reported below
            failures.append(exc)
        finally:
            reader.close()

    counter = threading.Thread(target=keep_counting)
    counter.start()
    try:
        for _ in range(3):
            base, _ = rebuild_from_checkpoint(ledger.db, ledger.log)
            assert base is not None
    finally:
        stop.set()
        counter.join()
    assert failures == [] and seen and set(seen) == {expected}
    assert verify(ledger.db, ledger.log) == []
