"""Projections, rebuilds and the auditor's verify, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from domain.charges import RequestStatus
from domain.grants import GrantReason
from domain.money import Money
from ledger import Database, Hold, Ledger, commands
from projections.queries import LogFilter, LogPosition, ProjectionQueries
from projections.rebuild import rebuild
from projections.store import ALL, Runner, by_name
from projections.verify import verify
from tests.ledger.helpers import charge, facts, new_key, register


@pytest.fixture
def ledger(database_url: str) -> Iterator[Ledger]:
    opened = Ledger(Database.from_url(database_url))
    yield opened
    opened.close()


def _traffic(ledger: Ledger, requests: int = 40) -> tuple:
    alice, bob = register(ledger, "alice", quota="500"), register(ledger, "bob", quota="500")
    ledger.run(commands.GrantQuota(alice, Money("0.25"), GrantReason.ADMIN, "", "admin:a"))
    key_a, key_b = new_key(ledger, alice), new_key(ledger, bob)
    for n in range(requests):
        user, key = (alice, key_a) if n % 3 else (bob, key_b)
        ledger.admit(Hold(facts(f"r{n}", user, key), Money(5), ledger.instance_id))
        status = RequestStatus.ERROR if n % 7 == 0 else RequestStatus.SUCCESS
        ledger.settle(charge(f"r{n}", user, key, tokens=0 if status is RequestStatus.ERROR else 17 * n,
                             reserved="5", status=status))
    return alice, bob, key_a, key_b


def _queries(ledger: Ledger) -> ProjectionQueries:
    return ProjectionQueries(ledger.db, ledger.db.connect())


def test_the_runner_folds_every_event_once(ledger: Ledger) -> None:
    alice, bob, key_a, _ = _traffic(ledger)
    runners = [Runner(ledger.db, ledger.log, batch=7) for _ in range(2)]
    threads = [threading.Thread(target=r.catch_up) for r in runners]  # two overlapping runners
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    queries = _queries(ledger)
    index = ledger.read(lambda q: q.user_by_id(alice))
    balance = queries.user_balance(alice)
    assert balance["quota"] == index["granted"] == Decimal("500.25")
    assert balance["used"] == index["used"]
    assert balance["request_count"] == 26
    assert queries.key_balances([key_a])[key_a]["request_count"] == 26
    logs = queries.logs(LogFilter(alice), 10)
    assert queries.count_logs(LogFilter(alice), 100) == 26 and len(logs) == 10
    assert queries.count_logs(LogFilter(alice), 20) == 20  # counted no further than asked
    assert [log["created_at"] for log in logs] == sorted((log["created_at"] for log in logs), reverse=True)
    days = queries.daily_usage(bob, "2000-01-01")
    assert sum(d["requests"] for d in days) == 14
    assert sum(d["failed"] for d in days) == 2  # n = 0 and 21
    assert sum((d["cost"] for d in days), Decimal(0)) == queries.user_balance(bob)["used"]
    assert verify(ledger.db, ledger.log) == []


def test_hourly_usage_answers_the_last_day_without_the_logs(ledger: Ledger) -> None:
    """The hourly read model holds what the daily one holds, bucketed by UTC hour; the
    auditor checks it independently, and notices when it is tampered with."""
    alice, bob, *_ = _traffic(ledger, requests=21)
    Runner(ledger.db, ledger.log).catch_up()
    queries = _queries(ledger)
    hours = queries.hourly_usage(alice, "2000-01-01T00:00:00Z")
    days = queries.daily_usage(alice, "2000-01-01")
    now = datetime.now(timezone.utc)
    assert {h["hour"] for h in hours} <= {f"{now - timedelta(hours=n):%Y-%m-%dT%H}:00:00Z" for n in range(2)}
    assert all(h["day"] == h["hour"][:10] for h in hours)
    for field in ("requests", "failed", "prompt_tokens", "completion_tokens"):
        assert sum(h[field] for h in hours) == sum(d[field] for d in days)
    assert sum(h["requests"] for h in hours) == 14
    assert sum((h["cost"] for h in hours), Decimal(0)) == queries.user_balance(alice)["used"] > 0
    assert queries.hourly_usage(alice, f"{now + timedelta(hours=1):%Y-%m-%dT%H}:00:00Z") == []
    assert queries.hourly_usage(bob, "2000-01-01T00:00:00Z") != hours
    assert verify(ledger.db, ledger.log) == []
    conn = ledger.db.connect()
    conn.cursor().execute(ledger.db.sql("UPDATE proj_usage_hourly SET cost = %s WHERE user_id = %s"), ["0.5", alice])
    conn.close()
    assert any(line.startswith(f"proj_usage_hourly {alice}") and " cost: events say" in line
               for line in verify(ledger.db, ledger.log))


def test_request_logs_applied_again_keep_one_row_per_request(ledger: Ledger) -> None:
    """The live request logs skip rows they hold already (a batch applied twice, say
    after its position was lost): one row per request, on both databases."""
    alice, *_ = _traffic(ledger, requests=12)
    runner = Runner(ledger.db, ledger.log, projections=[by_name("request_logs")], batch=5)
    runner.catch_up()
    conn = ledger.db.connect()
    try:
        with ledger.db.transaction(conn) as cur:
            cur.execute(ledger.db.sql("UPDATE proj_tracking SET position = %s WHERE name = %s"), [0, "request_logs"])
    finally:
        conn.close()
    assert runner.catch_up() > 0
    logs = _queries(ledger).logs(LogFilter(alice), 100)
    assert len(logs) == 8 and len({log["request_id"] for log in logs}) == 8


def test_log_filters(ledger: Ledger) -> None:
    alice, _, _, key_b = _traffic(ledger, requests=9)
    Runner(ledger.db, ledger.log).catch_up()
    queries = _queries(ledger)
    assert queries.count_logs(LogFilter(alice, key_id=key_b), 100) == 0  # bob's key: nothing of alice's
    assert queries.count_logs(LogFilter(alice, model="gpt-test"), 100) == 6
    assert queries.count_logs(LogFilter(alice, model="' OR 1=1 --"), 100) == 0
    future = datetime.now(timezone.utc) + timedelta(hours=1)
    assert queries.count_logs(LogFilter(alice, since=future), 100) == 0
    assert queries.count_logs(LogFilter(alice, until=future), 100) == 6
    everything = queries.logs(LogFilter(alice), 100)
    assert queries.logs(LogFilter(alice), 100, offset=5)[0]["request_id"] == everything[5]["request_id"]
    fifth = LogPosition(everything[4]["created_at"], everything[4]["position"])
    assert queries.logs(LogFilter(alice), 100, after=fifth) == everything[5:]  # strictly after, same order


def test_a_rebuild_swaps_in_identical_tables_while_queries_run(ledger: Ledger) -> None:
    alice, *_ = _traffic(ledger)
    runner = Runner(ledger.db, ledger.log)
    runner.catch_up()
    before = _queries(ledger).count_logs(LogFilter(alice), 1000)
    stop, failures, answers = threading.Event(), [], [0]

    def keep_querying() -> None:
        queries = _queries(ledger)
        while not stop.is_set():
            try:
                assert queries.count_logs(LogFilter(alice), 1000) >= 26 and len(queries.logs(LogFilter(alice), 5)) == 5
                answers[0] += 1
            except Exception as exc:
                failures.append(exc)

    reader = threading.Thread(target=keep_querying)
    reader.start()
    try:
        assert rebuild(ledger.db, ledger.log, [ALL[0]]) > 0  # one alone
        assert rebuild(ledger.db, ledger.log, ALL[1:]) > 0  # the others in one pass
        # events after the rebuild land in the swapped-in tables, exactly once
        ledger.settle(charge("late", alice, _traffic_key(ledger, alice), tokens=100))
        runner.catch_up()
    finally:
        stop.set()
        reader.join()
    assert failures == [] and answers[0] > 0
    assert _queries(ledger).count_logs(LogFilter(alice), 1000) == before + 1
    assert verify(ledger.db, ledger.log) == []


def _traffic_key(ledger: Ledger, user) -> object:
    keys, _ = ledger.read(lambda q: q.list_keys(user, 0, 1))
    return keys[0]["key_id"]


def test_verify_compares_a_lagging_projection_with_its_own_position(ledger: Ledger) -> None:
    _traffic(ledger, requests=5)
    Runner(ledger.db, ledger.log).catch_up()
    carol = register(ledger, "carol", quota="5")  # events the projections have not seen yet
    assert carol not in _queries(ledger).key_balances([carol]) and _queries(ledger).user_balance(carol)["quota"] == 0
    assert ledger.read(lambda q: q.user_by_id(carol))["granted"] == Decimal(5)  # the index tables have
    assert verify(ledger.db, ledger.log) == []  # each table compared at its own position
    Runner(ledger.db, ledger.log).catch_up()
    assert _queries(ledger).user_balance(carol)["quota"] == Decimal(5)
    assert verify(ledger.db, ledger.log) == []


def test_projections_are_known_by_name() -> None:
    assert by_name("balances") is ALL[0]
    with pytest.raises(KeyError, match="known: balances"):
        by_name("nope")


def test_only_one_process_rebuilds_at_a_time(database_url: str) -> None:
    from projections.scheduler import exclusive

    db = Database.from_url(database_url)
    with exclusive(db) as first:
        assert first
        with exclusive(db) as second:
            assert not second
    with exclusive(db) as again:
        assert again
