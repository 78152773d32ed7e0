"""PostgreSQL's drivers when a statement's answer is lost inside libpq (``ledger.wire``)
or the database goes away: what landed counts once, and nothing stays reserved. (The
same cases staged in the drivers, on both databases and both ways in, are in
``test_group_commit.py``.)"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import psycopg
import pytest

from domain.charges import RequestStatus
from domain.money import Money
from ledger import Database, Hold, Ledger, LedgerUnavailable
from ledger.replay import events, replay
from tests.ledger.helpers import charge, facts, new_key, register


class LosesAnswers:
    """A connection that runs each statement but, when armed, fails it afterwards as if
    the server's answer had been lost on the way (the statement did land). The drivers
    read their answers from libpq (``ledger.wire``), so the loss is staged there."""

    def __init__(self, conn: object) -> None:
        self._conn = conn
        self.armed = False

    @property
    def pgconn(self) -> object:
        return _LosingAnswers(self, self._conn.pgconn)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self._conn, name)


class _LosingAnswers:
    def __init__(self, owner: LosesAnswers, pgconn: object) -> None:
        self._owner = owner
        self._pgconn = pgconn

    def get_result(self) -> object:
        result = self._pgconn.get_result()  # type: ignore[attr-defined]
        if result is not None and self._owner.armed:
            self._owner.armed = False
            raise psycopg.OperationalError("the answer was lost")
        return result

    def __getattr__(self, name: str) -> object:
        return getattr(self._pgconn, name)


class Connections:
    """Every connection the drivers open, each able to lose answers; ``down`` refuses new ones."""

    def __init__(self) -> None:
        self.opened: list[LosesAnswers] = []
        self.down = False


@pytest.fixture
def connections(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Connections:
    if not database_url.startswith("postgresql"):
        pytest.skip("libpq is PostgreSQL's")
    made = Connections()
    connect = Database.aconnect

    async def flaky_connect(db: Database) -> LosesAnswers:
        if made.down:
            raise psycopg.OperationalError("connection refused")
        made.opened.append(LosesAnswers(await connect(db)))
        return made.opened[-1]

    monkeypatch.setattr(Database, "aconnect", flaky_connect)
    return made


def test_a_hold_or_charge_whose_answer_was_lost_counts_once(database_url: str, connections: Connections) -> None:
    """The group commit resends a statement whose answer was lost. The first attempt
    landed: the hold must be admitted (not refused against a balance that already holds
    it, and left reserved), and the charge reported as recorded, each counted once."""
    opened = connections.opened
    ledger = Ledger(Database.from_url(database_url), serving=True)
    try:
        alice = register(ledger, "alice", quota="100")
        key = new_key(ledger, alice)

        charges = [charge("warm", alice, key, tokens=10, reserved="1"), charge("big", alice, key, tokens=20, reserved="60")]

        async def scenario() -> bool:
            await ledger.aadmit(Hold(facts("warm", alice, key), Money(1), ledger.instance_id))
            opened[-1].armed = True  # the holds' connection
            await ledger.aadmit(Hold(facts("big", alice, key), Money(60), ledger.instance_id))  # 61 of 100 held
            assert await ledger.asettle(charges[0])
            opened[-1].armed = True  # the charges' connection
            return await ledger.asettle(charges[1])

        assert asyncio.run(scenario()) is True
        assert len(opened) == 4  # each driver reconnected once
        user = ledger.read(lambda q: q.user_by_id(alice))
        assert user["held"] == 0 and user["used"] == charges[0].cost.cents + charges[1].cost.cents
        assert replay(ledger.app).duplicate_charges == []
    finally:
        ledger.close()


def test_a_hold_that_landed_as_the_database_failed_is_released(database_url: str, connections: Connections) -> None:
    """The hold lands, its answer is lost and the database cannot be reached for the
    resend: the caller is refused (fail closed), and once the database is back the
    reservation nobody will settle is released, at no charge."""
    ledger = Ledger(Database.from_url(database_url), serving=True)
    try:
        alice = register(ledger, "alice", quota="100")
        key = new_key(ledger, alice)

        async def scenario() -> None:
            await ledger.aadmit(Hold(facts("warm", alice, key), Money(1), ledger.instance_id))
            connections.opened[-1].armed, connections.down = True, True
            with pytest.raises(LedgerUnavailable):
                await ledger.aadmit(Hold(facts("lost", alice, key), Money(60), ledger.instance_id))
            connections.down = False

        asyncio.run(scenario())
        assert ledger.read(lambda q: q.user_by_id(alice))["held"] == Decimal(61)  # it did land
        deadline = time.monotonic() + 10
        while ledger.read(lambda q: q.user_by_id(alice))["held"] != 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        user = ledger.read(lambda q: q.user_by_id(alice))
        assert (user["held"], user["used"]) == (Decimal(1), Decimal(0))
        settled = {event.request_id: event.status for _, event in events(ledger.app) if hasattr(event, "request_id")}
        assert settled == {"lost": RequestStatus.INTERRUPTED.value}
    finally:
        ledger.close()
