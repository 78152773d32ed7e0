"""The ledger's contract, run on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import multiprocessing
import queue
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from uuid import UUID, uuid4

import pytest

from domain.grants import GrantReason
from domain.keys import KeyStatus
from domain.money import Money
from domain.users import Status
from ledger import (
    Conflict,
    Database,
    Hold,
    InvalidValue,
    Ledger,
    LedgerUnavailable,
    NotFound,
    Refused,
    commands,
)
from ledger.admission import OutputBound
from ledger.database import DatabaseUrlError
from ledger.replay import replay
from tests.gateway import wait_until
from tests.ledger import workers
from tests.ledger.helpers import charge, facts, new_key, register


@pytest.fixture
def ledger(database_url: str) -> Iterator[Ledger]:
    opened = Ledger(Database.from_url(database_url))
    yield opened
    opened.close()


def test_registration_is_unique_and_grants_signup_and_invites(ledger: Ledger) -> None:
    alice = register(ledger, "alice", quota="50")
    with pytest.raises(Conflict):
        register(ledger, "ALICE")
    with pytest.raises(NotFound):
        register(ledger, "carol", inviter="NOPE1234")
    code = ledger.read(lambda q: q.user_by_id(alice))["invite_code"]
    bob = register(ledger, "bob", quota="50", inviter=code.lower())
    users = {u: ledger.read(lambda q, u=u: q.user_by_id(u)) for u in (alice, bob)}
    assert users[alice]["granted"] == Decimal(50)  # the inviter waits for bob's first charged call
    assert users[bob]["granted"] == Decimal(150)  # signup + reward for being invited
    assert users[bob]["invited_by"] == alice


def test_a_grant_with_the_same_reference_counts_once(ledger: Ledger) -> None:
    alice = register(ledger, "alice")
    grant = commands.GrantQuota(alice, Money("12.5"), GrantReason.ADMIN, "thanks", "admin:ticket-1")
    assert ledger.run(grant) is True
    assert ledger.run(grant) is False
    assert ledger.read(lambda q: q.user_by_id(alice))["granted"] == Decimal("12.5")
    with pytest.raises(NotFound):
        ledger.run(commands.GrantQuota(uuid4(), Money(1), GrantReason.ADMIN, "", "admin:x"))


def test_admission_holds_the_worst_case_and_refuses_past_the_balance(ledger: Ledger) -> None:
    alice = register(ledger, "alice", quota="10")
    key = new_key(ledger, alice)
    ledger.admit(Hold(facts("r1", alice, key), Money(6), ledger.instance_id))
    with pytest.raises(Refused) as refused:
        ledger.admit(Hold(facts("r2", alice, key), Money(6), ledger.instance_id))
    assert refused.value.reason == "insufficient_user_quota"
    assert refused.value.needed == Money(6) and refused.value.available == Money(4)
    assert ledger.read(lambda q: q.user_by_id(alice))["held"] == Decimal(6)
    ledger.settle(charge("r1", alice, key, tokens=250, reserved="6"))  # 2.5 cents
    user = ledger.read(lambda q: q.user_by_id(alice))
    assert (user["used"], user["held"]) == (Decimal("2.5"), Decimal(0))
    ledger.admit(Hold(facts("r2", alice, key), Money("7.5"), ledger.instance_id))


def test_one_batch_decides_its_holds_in_order_against_the_running_balance(database_url: str) -> None:
    """Holds submitted together are one batch (one ``ts_admit`` call on PostgreSQL, one
    transaction under the write lock on SQLite), decided in order against the balance as
    each admission leaves it."""
    sizes: list[tuple[str, int]] = []
    ledger = Ledger(Database.from_url(database_url), on_batch=lambda lane, size, _: sizes.append((lane, size)))
    try:
        alice, bob = register(ledger, "alice", quota="10"), register(ledger, "bob", quota="10")
        key, capped = new_key(ledger, alice), new_key(ledger, bob, quota="4", name="capped")
        awkward = 'clé "quoted" \\ back\'slash ✓ ключ'  # travels in the batch's JSON
        holds = [Hold(replace(facts(f"r{n}", alice, key), key_name=awkward), Money(3), ledger.instance_id) for n in range(5)]
        holds += [Hold(facts("foreign", bob, key), Money(1), ledger.instance_id)]
        holds += [Hold(facts(f"b{n}", bob, capped), Money(2), ledger.instance_id) for n in range(3)]

        async def together() -> list[object]:
            return await asyncio.gather(*(ledger.aadmit(hold) for hold in holds), return_exceptions=True)

        outcomes = asyncio.run(together())
        assert sizes == [("holds", len(holds))]
        assert outcomes[:3] == [None, None, None] and outcomes[6:8] == [None, None]
        for refused in (*outcomes[3:5], outcomes[8]):
            assert isinstance(refused, Refused)
        assert [(r.reason, r.available) for r in (outcomes[3], outcomes[4], outcomes[8])] == [
            ("insufficient_user_quota", Money(1)), ("insufficient_user_quota", Money(1)), ("insufficient_key_quota", Money(0))
        ]
        assert isinstance(outcomes[5], Refused) and outcomes[5].reason == "unknown_account"
        assert ledger.read(lambda q: q.user_by_id(alice))["held"] == Decimal(9)
        assert ledger.read(lambda q: q.key_by_id(capped))["held"] == Decimal(4)
        names = set(ledger.read(lambda q: [row["key_name"] for row in q.conn.execute("SELECT key_name FROM ts_holds")]))
        assert names == {awkward, "key"}
    finally:
        ledger.close()


def test_an_output_limit_left_to_the_ledger_is_the_largest_the_accounts_can_pay(ledger: Ledger) -> None:
    """A call without a client limit: the ledger picks the largest output limit that both
    the user's and the key's remaining quota pay for, from a thread and on the event
    loop alike, and refuses only when not even one token fits."""
    alice = register(ledger, "alice", quota="10")
    key, capped = new_key(ledger, alice), new_key(ledger, alice, quota="5", name="capped")
    half_cent = OutputBound(per_token=Decimal("0.5"), most=100)

    def flexible(request_id: str, key_id: UUID, fixed: str, bound: OutputBound = half_cent) -> Hold:
        return Hold(facts(request_id, alice, key_id), Money(fixed), ledger.instance_id, output=bound)

    assert ledger.admit(flexible("capped", capped, "2")) == 6  # (5 - 2) / 0.5: the key binds
    assert ledger.read(lambda q: q.key_by_id(capped))["held"] == Decimal(5)
    assert ledger.admit(flexible("few", key, "1", OutputBound(Decimal("0.5"), most=3))) == 3  # at most `most`
    assert ledger.read(lambda q: q.user_by_id(alice))["held"] == Decimal("7.5")

    async def on_the_loop() -> int | None:
        return await ledger.aadmit(flexible("rest", key, "0.25"))

    assert asyncio.run(on_the_loop()) == 4  # (10 - 7.5 - 0.25) / 0.5 = 4.5: never rounded up
    assert ledger.read(lambda q: q.user_by_id(alice))["held"] == Decimal("9.75")
    with pytest.raises(Refused) as refused:
        ledger.admit(flexible("none", key, "0"))
    assert refused.value.reason == "insufficient_user_quota"
    assert (refused.value.needed, refused.value.available) == (Money("0.5"), Money("0.25"))
    free = OutputBound(per_token=Decimal(0), most=64)
    assert ledger.admit(flexible("free", key, "0.25", free)) == 64
    ledger.settle(charge("rest", alice, key, tokens=100, reserved="2.25"))  # 1 cent of 2.25 held
    assert ledger.read(lambda q: q.user_by_id(alice))["held"] == Decimal("7.75")


def test_charges_have_one_way_in(ledger: Ledger) -> None:
    """On PostgreSQL a charge is appended only by the group commit (``ts_append_charges``,
    which releases its hold); saving one through the event store is refused, so no second
    path can settle money differently."""
    if not ledger.db.is_postgres:
        pytest.skip("on SQLite the group commit's driver is the event store itself")
    alice = register(ledger, "alice", quota="10")
    key = new_key(ledger, alice)
    stray = charge("stray", alice, key, tokens=1)
    with pytest.raises(TypeError, match="group commit"):
        ledger.app.events.put([stray], ledger_events=[stray])
    assert replay(ledger.app).charged_requests == set()


def test_a_key_quota_limits_the_key_alone(ledger: Ledger) -> None:
    alice = register(ledger, "alice", quota="100")
    small, big = new_key(ledger, alice, quota="5", name="small"), new_key(ledger, alice, name="big")
    with pytest.raises(Refused) as refused:
        ledger.admit(Hold(facts("r1", alice, small), Money(6), ledger.instance_id))
    assert refused.value.reason == "insufficient_key_quota"
    ledger.admit(Hold(facts("r2", alice, big), Money(60), ledger.instance_id))


def test_disabled_deleted_expired_and_foreign_keys_are_refused(ledger: Ledger) -> None:
    alice, bob = register(ledger, "alice", quota="100"), register(ledger, "bob", quota="100")
    key = new_key(ledger, alice)
    ledger.run(commands.UpdateKey(alice, key, status=KeyStatus.DISABLED))
    with pytest.raises(Refused, match="key_disabled"):
        ledger.admit(Hold(facts("r1", alice, key), Money(1), ledger.instance_id))
    ledger.run(commands.UpdateKey(alice, key, status=KeyStatus.ACTIVE))
    ledger.admit(Hold(facts("r2", alice, key), Money(1), ledger.instance_id))
    with pytest.raises(Refused, match="unknown_account"):
        ledger.admit(Hold(facts("r3", bob, key), Money(1), ledger.instance_id))
    with pytest.raises(NotFound):
        ledger.run(commands.UpdateKey(bob, key, name="mine now"))
    ledger.run(commands.AdministerUser(alice, Status.DISABLED, None))
    with pytest.raises(Refused, match="user_disabled"):
        ledger.admit(Hold(facts("r4", alice, key), Money(1), ledger.instance_id))
    ledger.run(commands.AdministerUser(alice, Status.ACTIVE, None))
    ledger.run(commands.UpdateKey(alice, key, delete=True))
    with pytest.raises(Refused, match="key_disabled"):
        ledger.admit(Hold(facts("r5", alice, key), Money(1), ledger.instance_id))
    with pytest.raises(NotFound):
        ledger.run(commands.UpdateKey(alice, key, name="gone"))
    expired = ledger.run(commands.CreateKey(alice, "old", "digest-old", "tsk-old", None, None, None,
                                            datetime.now(timezone.utc) - timedelta(seconds=1)))
    with pytest.raises(Refused, match="key_expired"):
        ledger.admit(Hold(facts("r6", alice, expired), Money(1), ledger.instance_id))


def test_a_request_is_charged_at_most_once(ledger: Ledger) -> None:
    alice = register(ledger, "alice", quota="100")
    key = new_key(ledger, alice)
    ledger.admit(Hold(facts("r1", alice, key), Money(10), ledger.instance_id))
    assert ledger.settle(charge("r1", alice, key, tokens=300, reserved="10")) is True
    assert ledger.settle(charge("r1", alice, key, tokens=900, reserved="10")) is False
    # A duplicate inside a batch of fresh charges must not sink the others.
    async def together() -> list[bool]:
        settles = [ledger.asettle(charge(f"b{n}", alice, key, tokens=100)) for n in range(20)]
        return await asyncio.gather(*settles, ledger.asettle(charge("r1", alice, key, tokens=500)))

    assert asyncio.run(together()) == [True] * 20 + [False]
    user = ledger.read(lambda q: q.user_by_id(alice))
    assert user["used"] == Decimal(3) + Decimal(20)
    totals = replay(ledger.app)
    assert totals.duplicate_charges == []
    assert totals.users[alice].used == user["used"]


def test_an_event_loop_admits_and_settles_in_shared_transactions(database_url: str) -> None:
    """The awaitable forms the edge uses (the serving loop's own group commit): many calls
    at once share few transactions, refusals stay per hold, and a duplicate hold or charge
    in a batch is reported without sinking the others."""
    batches: list[tuple[str, int]] = []
    ledger = Ledger(Database.from_url(database_url), on_batch=lambda lane, size, _: batches.append((lane, size)))
    try:
        alice = register(ledger, "alice", quota="30")
        key = new_key(ledger, alice)
        bob = register(ledger, "bob", quota="10")
        bobs = new_key(ledger, bob)

        async def scenario() -> tuple[list[object], list[object], list[object]]:
            holds = [ledger.aadmit(Hold(facts(f"r{n}", alice, key), Money(1), ledger.instance_id)) for n in range(40)]
            admitted = await asyncio.gather(*holds, return_exceptions=True)
            await ledger.aadmit(Hold(facts("b0", bob, bobs), Money(1), ledger.instance_id))
            # In one batch: a request id already held, and a fresh hold the balance cannot cover.
            again = await asyncio.gather(
                ledger.aadmit(Hold(facts("b0", bob, bobs), Money(1), ledger.instance_id)),
                ledger.aadmit(Hold(facts("b1", bob, bobs), Money(100), ledger.instance_id)),
                return_exceptions=True,
            )
            charged = [n for n, outcome in enumerate(admitted) if outcome is None]
            settles = [ledger.asettle(charge(f"r{n}", alice, key, tokens=10, reserved="1")) for n in charged]
            settles.append(ledger.asettle(charge(f"r{charged[0]}", alice, key, tokens=999, reserved="1")))
            return admitted, again, await asyncio.gather(*settles)

        batches.clear()
        admitted, again, settled = asyncio.run(scenario())
    finally:
        ledger.close()
    refused = [outcome for outcome in admitted if outcome is not None]
    assert len(refused) == 10 and all(isinstance(r, Refused) and r.reason == "insufficient_user_quota" for r in refused)
    assert isinstance(again[0], Conflict)
    assert isinstance(again[1], Refused) and again[1].reason == "insufficient_user_quota"
    assert settled == [True] * 30 + [False]
    hold_batches = [size for lane, size in batches if lane == "holds"]
    assert sum(hold_batches) == 40 + 1 + 2 and len(hold_batches) < 40
    reopened = Ledger(Database.from_url(database_url))
    try:
        user = reopened.read(lambda q: q.user_by_id(alice))
        assert user["used"] == Decimal(3) and user["held"] == 0
        assert reopened.read(lambda q: q.user_by_id(bob))["held"] == Decimal(1)  # b0 once
        assert replay(reopened.app).duplicate_charges == []
    finally:
        reopened.close()


def test_replay_agrees_with_the_index_tables(ledger: Ledger) -> None:
    alice = register(ledger, "alice", quota="100")
    key = new_key(ledger, alice, quota="40")
    for n in range(30):
        ledger.admit(Hold(facts(f"r{n}", alice, key), Money(1), ledger.instance_id))
        ledger.settle(charge(f"r{n}", alice, key, tokens=n, reserved="1"))
    totals = replay(ledger.app)
    user, row = totals.users[alice], ledger.read(lambda q: q.key_by_id(key))
    assert user.used == ledger.read(lambda q: q.user_by_id(alice))["used"] == Decimal(435) / 100
    assert totals.keys[key].used == row["used"] and totals.keys[key].quota == row["quota"] == Decimal(40)
    assert user.requests == totals.keys[key].requests == 30


def test_no_overdraft_across_processes_and_threads(database_url: str) -> None:
    granted = Decimal(200)
    setup = Ledger(Database.from_url(database_url))
    alice = register(setup, "alice", quota=str(granted))
    key = new_key(setup, alice)
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    children = [
        context.Process(target=workers.spend, args=(database_url, str(alice), str(key), f"p{n}", 8, 25, results))
        for n in range(2)
    ]
    for child in children:
        child.start()
    charged = [Decimal(c) for report in _reports(results, children) for c in report]
    for child in children:
        child.join(60)
        assert child.exitcode == 0
    user = setup.read(lambda q: q.user_by_id(alice))
    setup.close()
    assert user["used"] <= granted
    assert user["used"] == sum(charged, Decimal(0))
    assert user["held"] == 0
    assert len(charged) > 20  # the balance was actually contended, not trivially unused


def _reports(results, children) -> list:
    """One report per child; fails fast (not after a long timeout) if a child dies."""
    reports = []
    deadline = time.monotonic() + 300
    while len(reports) < len(children):
        try:
            reports.append(results.get(timeout=1))
        except queue.Empty:
            crashed = [c.exitcode for c in children if c.exitcode not in (None, 0)]
            assert not crashed, f"a child process failed with exit code {crashed}"
            assert time.monotonic() < deadline, "children did not report in time"
    return reports


def test_a_serving_ledger_vacuums_the_tables_its_requests_churn(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite keeps no dead row versions to reclaim")
    serving = Ledger(Database.from_url(database_url), serving=True, vacuum_after_holds=3)
    try:
        alice = register(serving, "alice", quota="100")
        key = new_key(serving, alice)
        conn = serving.db.connect()
        try:
            def vacuumed() -> set[str]:
                rows = conn.execute(
                    "SELECT relname FROM pg_stat_user_tables WHERE schemaname = %s AND vacuum_count > 0",
                    (serving.db.schema,),
                ).fetchall()
                return {row["relname"] for row in rows}

            def beats() -> int:
                row = conn.execute("SELECT heartbeat_at > started_at AS beat FROM ts_instances WHERE instance_id = %s",
                                   (serving.instance_id,)).fetchone()
                return bool(row["beat"])

            wait_until(beats)  # maintenance has run: with no request yet, it vacuumed nothing
            assert vacuumed() == set()
            for n in range(3):
                serving.admit(Hold(facts(f"v{n}", alice, key), Money(1), serving.instance_id))
                serving.settle(charge(f"v{n}", alice, key, tokens=5, reserved="1"))
            wait_until(lambda: vacuumed() >= {"ts_holds", "ts_settled", "ts_users", "ts_keys"}, interval=0.2)
        finally:
            conn.close()
    finally:
        serving.close()


def test_an_unreachable_database_fails_closed() -> None:
    with pytest.raises(LedgerUnavailable):
        Ledger(Database.from_url("postgresql://postgres@127.0.0.1:1/test"))


@pytest.mark.parametrize("url", ["mysql://x/y", "sqlite://", "postgresql://h/db?schema=Robert';DROP"])
def test_bad_database_urls_are_explained(url: str) -> None:
    with pytest.raises(DatabaseUrlError):
        Database.from_url(url)


def test_a_value_the_database_cannot_store_is_the_callers_error(ledger: Ledger) -> None:
    """Found by schemathesis: PostgreSQL text cannot hold NUL, and that was reported as
    the ledger being unavailable (503) instead of a bad value (400)."""
    alice = register(ledger, "alice")
    change = commands.ChangeProfile(alice, "a\x00b", None)
    if ledger.db.is_postgres:
        with pytest.raises(InvalidValue):
            ledger.run(change)
        ledger.run(commands.ChangeProfile(alice, "ab", None))  # and the writer carries on
    else:
        ledger.run(change)  # SQLite stores it
    assert ledger.read(lambda q: q.user_by_id(alice)) is not None


def test_a_hold_the_database_cannot_store_is_the_callers_error_on_the_event_loop(ledger: Ledger) -> None:
    """The same through ``aadmit``, which on PostgreSQL is the event loop's own lane
    (``ledger.wire`` maps the database's error): the caller gets InvalidValue, not a
    503, and the next hold is admitted."""
    alice = register(ledger, "alice", quota="10")
    key = new_key(ledger, alice)
    unstorable = Hold(replace(facts("nul", alice, key), key_name="a\x00b"), Money(1), ledger.instance_id)

    async def scenario() -> None:
        if ledger.db.is_postgres:
            with pytest.raises(InvalidValue):
                await ledger.aadmit(unstorable)
        else:
            await ledger.aadmit(unstorable)  # SQLite stores it
        await ledger.aadmit(Hold(facts("next", alice, key), Money(1), ledger.instance_id))

    asyncio.run(scenario())
    assert "next" in {hold["request_id"] for hold in ledger.read(lambda q: q.holds())}
