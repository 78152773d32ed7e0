"""The eventsourcing ``Application`` that stores TokenSea's ledger events."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import JSONTranscoder, Transcoding

from domain.money import Money


class MoneyAsStr(Transcoding):
    type = Money
    name = "money"

    def encode(self, obj: Any) -> str:
        return str(obj)

    def decode(self, data: Any) -> Money:
        return Money(str(data))


class LedgerApplication(Application[UUID]):
    """One event table for every ledger event (``tokensea_events`` on PostgreSQL)."""

    name = "TokenSea"

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(MoneyAsStr())
