"""``tokensea ledger export``: every event as a JSON line, in notification order.

Each line has the notification id (``"id"``), the event's timestamp, topic, aggregate id
and version, every field of the event, and its hash in the ledger's chain (``"hash"``,
hex; ``ledger.chain``). Money and prices are exact decimal strings. A user's password
hash is the one field left out: an export is for auditors.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from ledger.chain import REDACTED, record
from ledger.log import EventLog

__all__ = ["PAGE", "REDACTED", "export", "line"]

PAGE = 5000


def line(position: int, event: Any, chain: bytes | None = None) -> str:
    fields: dict[str, Any] = {"id": position, **record(event)}
    if chain is not None:
        fields["hash"] = chain.hex()
    return orjson.dumps(fields).decode()


def export(events: EventLog, since: int = 0) -> Iterator[str]:
    position = since
    while batch := events.read_chained(position, PAGE):
        for number, event, chain in batch:
            yield line(number, event, chain)
        position = batch[-1][0]
