from datetime import datetime, timezone
from decimal import Decimal
from uuid import uuid4

import pytest
from eventsourcing.application import Application
from eventsourcing.persistence import JSONTranscoder

from domain.money import Money
from ledger import application
from ledger.application import LedgerTranscoder, MoneyAsStr


def test_reads_and_writes_the_library_format_both_ways() -> None:
    library = JSONTranscoder()
    Application().register_transcodings(library)
    library.register(MoneyAsStr())
    ours = LedgerTranscoder()
    state = {
        "user_id": uuid4(),
        "cost": Money("0.0315"),
        "price": Decimal("12.5"),
        "timestamp": datetime.now(timezone.utc),
        "models": ["a", "b"],
        "quota": None,
        "stream": True,
        "nested": {"when": datetime(2026, 1, 1, tzinfo=timezone.utc)},
    }
    assert ours.decode(library.encode(state)) == state
    assert library.decode(ours.encode(state)) == state


def test_recurring_values_decode_alike_past_the_memo_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Recurring ids and amounts are decoded once and shared; a full memo starts over
    and every value still decodes to itself."""
    monkeypatch.setattr(application, "_MEMO_LIMIT", 3)
    ours = LedgerTranscoder()
    states = [{"user_id": uuid4(), "cost": Money(n), "price": Decimal(f"{n}.5"), "nested": [Money(n)]} for n in range(10)]
    for _ in range(2):
        for state in states:
            assert ours.decode(ours.encode(state)) == state
    first, again = (ours.decode(ours.encode(states[-1])) for _ in range(2))
    assert first["user_id"] is again["user_id"] and first["cost"] is again["cost"]
