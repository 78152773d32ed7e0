"""Invite rewards that cannot be farmed, on SQLite and on PostgreSQL: an inviter is paid
when an invitee is first charged, once per invitee, and at most the daily cap however
many processes pay at once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from decimal import Decimal
from uuid import UUID

import pytest

from domain.charges import RequestStatus
from domain.money import Money
from ledger import Database, Hold, Ledger, commands
from projections.invite_rewards import InviteRewards
from projections.store import Runner
from tests.ledger.helpers import charge, facts, new_key, register


@pytest.fixture
def ledger(database_url: str) -> Iterator[Ledger]:
    opened = Ledger(Database.from_url(database_url))
    yield opened
    opened.close()


def _invitees(ledger: Ledger, count: int) -> tuple[UUID, list[tuple[UUID, UUID]]]:
    inviter = register(ledger, "inviter")
    code = ledger.read(lambda q: q.user_by_id(inviter))["invite_code"]
    invitees = []
    for n in range(count):
        user = register(ledger, f"farm{n}", inviter=code)  # each gets 100 of its own
        invitees.append((user, new_key(ledger, user)))
    return inviter, invitees


def _charged(ledger: Ledger, user: UUID, key: UUID, name: str, tokens: int = 100,
             status: RequestStatus = RequestStatus.SUCCESS) -> None:
    ledger.admit(Hold(facts(name, user, key), Money(1), ledger.instance_id))
    ledger.settle(charge(name, user, key, tokens=tokens, reserved="1", status=status))


def _granted(ledger: Ledger, user: UUID) -> Decimal:
    return Decimal(ledger.read(lambda q: q.user_by_id(user))["granted"])


def _follow(ledger: Ledger, per_day: int = 3) -> None:
    Runner(ledger.db, ledger.log, policies=[InviteRewards(ledger, Money(100), per_day)]).catch_up()


def test_an_inviter_is_paid_once_an_invitee_is_charged(ledger: Ledger) -> None:
    inviter, [(bob, bobs_key), (carol, carols_key)] = _invitees(ledger, 2)
    _follow(ledger)
    assert _granted(ledger, inviter) == 0  # registrations alone pay nothing
    _charged(ledger, carol, carols_key, "free", tokens=0, status=RequestStatus.ERROR)
    _follow(ledger)
    assert _granted(ledger, inviter) == 0  # a call that cost nothing is not a charged call
    _charged(ledger, bob, bobs_key, "b1")
    _charged(ledger, bob, bobs_key, "b2")
    _follow(ledger)
    assert _granted(ledger, inviter) == 100
    again = commands.RewardInviter(bob, Money(100), 3, "2030-01-01")
    assert ledger.run(again) is False  # once per invitee, whatever the day
    _follow(ledger)
    assert _granted(ledger, inviter) == 100


def test_a_farm_never_pays_more_than_the_daily_cap(ledger: Ledger) -> None:
    inviter, invitees = _invitees(ledger, 8)
    for n, (user, key) in enumerate(invitees):
        _charged(ledger, user, key, f"r{n}")
    payers = [threading.Thread(target=_follow, args=(ledger,)) for _ in range(3)]  # three processes at once
    for payer in payers:
        payer.start()
    for payer in payers:
        payer.join()
    assert _granted(ledger, inviter) == 300  # 3 a day, of 8 charged invitees
    tomorrow = [commands.RewardInviter(user, Money(100), 3, "2099-01-02") for user, _ in invitees]
    outcomes = [ledger.run(c) for c in tomorrow]
    assert (outcomes.count(False), outcomes.count(True), outcomes.count(None)) == (3, 3, 2)
    assert _granted(ledger, inviter) == 600
