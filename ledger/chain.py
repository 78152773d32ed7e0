"""The ledger's hash chain: every event is linked to all the events before it.

For the event at notification position ``i``::

    canonical_i = the event's export record (``ledger.export``) without its "id" and
                  "hash" keys, as compact JSON with sorted keys (orjson, OPT_SORT_KEYS)
    digest_i    = sha256(canonical_i)
    hash_i      = sha256(hash_{i-1} || digest_i)       hash before the first event: 32 zero bytes

``hash_i`` is stored with the event (the ``chain`` column), computed in the transaction
that appends it, after the events table's lock: so the chain follows notification order.
An export line carries it as ``"hash"``; anyone can recompute the chain from the export
alone (``ledger.audit``), and a head (position and hash) published earlier pins every
event up to it: a changed, removed, inserted or reordered event changes every later hash.

The chain covers exactly what an export shows: fields left out of the export (a user's
password hash, ``REDACTED``) are not in ``canonical`` and are not protected by it.

``canonical`` from the domain event at append time equals what an auditor computes from
the parsed export line: every value in a record is already a JSON string, integer,
boolean, null or list of those (money and decimals as exact strings, UUIDs as text,
datetimes in ISO 8601 with their offset), which JSON reads back as it wrote them.

This module is pure: no database, no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

import orjson

from domain.money import Money, format_decimal

GENESIS = bytes(32)  # the hash "before" the first event
REDACTED = frozenset({"password_hash"})  # never exported, so never chained
NOT_CHAINED = ("id", "hash")  # an export line's keys that are not part of its canonical form
_ENVELOPE = frozenset({"originator_id", "originator_version", "timestamp", "originator_topic"})
_PLAIN = frozenset({str, int, bool, type(None), UUID})
_SHA256 = hashlib.sha256


def _value(value: Any) -> Any:
    """A field's export form: JSON's own types, exact decimal strings, ISO 8601 datetimes.
    UUIDs are left to orjson, which writes them as ``str(uuid)`` does."""
    kind = type(value)
    if kind is Money:
        return _decimal(value.cents)
    if kind is Decimal:
        return _decimal(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [item if type(item) in _PLAIN else _value(item) for item in value]
    if isinstance(value, Money):
        return str(value)
    if isinstance(value, Decimal):
        return format_decimal(value)
    return value  # str, int, bool, None, UUID; else orjson writes it (or refuses it, as the event store would)


# Prices, multipliers and common amounts recur from event to event: each is formatted
# once. Equal decimals (1.5, 1.50) format alike, so the value is the key.
_FORMATTED: dict[Decimal, str] = {}
_FORMATTED_LIMIT = 10_000


def _decimal(value: Decimal) -> str:
    text = _FORMATTED.get(value)
    if text is None:
        if len(_FORMATTED) >= _FORMATTED_LIMIT:
            _FORMATTED.clear()
        text = _FORMATTED[value] = format_decimal(value)
    return text


_SKIPPED = _ENVELOPE | REDACTED


def record(event: Any) -> dict[str, Any]:
    """The event's export record, without its position ("id") and hash."""
    fields: dict[str, Any] = {
        "timestamp": event.timestamp.isoformat(),
        "topic": type(event).TOPIC,
        "aggregateId": event.originator_id,
        "version": event.originator_version,
    }
    plain = _PLAIN
    for key, value in vars(event).items():
        if key not in _SKIPPED:
            fields[key] = value if type(value) in plain else _value(value)
    return fields


def canonical(event: Any) -> bytes:
    """The bytes the chain hashes for a domain event."""
    return orjson.dumps(record(event), option=orjson.OPT_SORT_KEYS)


def canonical_of_line(parsed: dict[str, Any]) -> bytes:
    """The same bytes, from a parsed export line (its "id" and "hash" are left out)."""
    return orjson.dumps({key: value for key, value in parsed.items() if key not in NOT_CHAINED},
                        option=orjson.OPT_SORT_KEYS)


def digest(event: Any) -> bytes:
    """sha256 of the event's canonical form."""
    return _SHA256(canonical(event)).digest()


def link(previous: bytes, event_digest: bytes) -> bytes:
    """The hash of an event whose predecessor's hash is ``previous``."""
    return _SHA256(previous + event_digest).digest()


def extend(previous: bytes, digests: Iterable[bytes]) -> list[bytes]:
    """The hashes of events with ``digests``, in order, after ``previous``."""
    hashes = []
    for event_digest in digests:
        previous = _SHA256(previous + event_digest).digest()
        hashes.append(previous)
    return hashes


def _digest_of(item: Any) -> bytes:
    if isinstance(item, bytes | bytearray | memoryview):
        return _SHA256(bytes(item)).digest()  # a canonical form
    if isinstance(item, dict):
        return _SHA256(canonical_of_line(item)).digest()  # a parsed export line
    return digest(item)  # a domain event


def check(previous: bytes, items: Iterable[tuple[int, Any, bytes]]) -> int | None:
    """The position of the first event whose stored hash is not ``link(hash before it,
    its digest)``, or None if the whole range chains on from ``previous``.

    ``items``: ``(position, event, stored_hash)`` in ascending position, where ``event``
    is a domain event, a parsed export line (a dict) or a canonical form (bytes), e.g.
    ``EventLog.read_chained`` rows with ``previous = EventLog.chain_at(after)``. After a
    bad link the check stops: everything later depends on it.
    """
    for position, item, stored in items:
        expected = _SHA256(previous + _digest_of(item)).digest()
        if expected != bytes(stored):
            return position
        previous = expected
    return None


def hashes_of(previous: bytes, events: Sequence[Any]) -> list[bytes]:
    """The chain hashes of domain ``events`` appended in order after ``previous``."""
    return extend(previous, (digest(event) for event in events))
