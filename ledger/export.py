"""``tokensea ledger export``: every event as a JSON line, in notification order.

Each line has the notification id, the event's timestamp, topic, aggregate id and
version, and every field of the event. Money and prices are exact decimal strings. A
user's password hash is the one field left out: an export is for auditors.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson

from domain.money import Money, format_decimal
from ledger.log import EventLog

REDACTED = {"password_hash"}
PAGE = 5000


def _value(value: Any) -> Any:
    if isinstance(value, Money):
        return str(value)
    if isinstance(value, Decimal):
        return format_decimal(value)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_value(item) for item in value]
    return value


def line(position: int, event: Any) -> str:
    fields = {
        key: _value(value)
        for key, value in vars(event).items()
        if key not in ("originator_id", "originator_version", "timestamp", "originator_topic") and key not in REDACTED
    }
    record = {
        "id": position,
        "timestamp": event.timestamp.isoformat(),
        "topic": type(event).TOPIC,
        "aggregateId": str(event.originator_id),
        "version": event.originator_version,
        **fields,
    }
    return orjson.dumps(record).decode()


def export(events: EventLog, since: int = 0) -> Iterator[str]:
    position = since
    while batch := events.read(position, PAGE):
        for number, event in batch:
            yield line(number, event)
        position = batch[-1][0]
