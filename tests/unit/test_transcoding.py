from datetime import datetime, timezone
from decimal import Decimal
from uuid import uuid4

from eventsourcing.application import Application
from eventsourcing.persistence import JSONTranscoder

from domain.money import Money
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
