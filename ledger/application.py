"""The eventsourcing ``Application`` that stores TokenSea's ledger events, and its
transcoder.

Events are stored as JSON in eventsourcing's own tagged format
(``{"_type_": "decimal_str", "_data_": "1.5"}`` for values JSON cannot hold), written
and read with orjson: the standard library's encoder was the largest CPU cost of the
group-commit writer. The bytes are the library's format, so either transcoder reads
what the other wrote.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.application import Application
from eventsourcing.persistence import Transcoder, Transcoding

from domain.money import Money
from ledger.database import Database
from ledger.effects import Effects
from ledger.errors import LedgerError, LedgerUnavailable
from ledger.failures import classify
from ledger.migrations import require_current

_ENCODERS: dict[type, tuple[str, Callable[[Any], Any]]] = {
    UUID: ("uuid_hex", lambda value: value.hex),
    Decimal: ("decimal_str", str),
    datetime: ("datetime_iso", lambda value: value.isoformat()),
    Money: ("money", lambda value: str(value.cents)),
}
_DECODERS: dict[str, Callable[[Any], Any]] = {
    "uuid_hex": UUID,
    "decimal_str": Decimal,
    "datetime_iso": datetime.fromisoformat,
    "money": Money,
}
# Tagged values that recur from event to event (account ids, unit prices, multipliers,
# common amounts) are decoded once per process: the decoded objects are immutable, so
# events can share them. Decoding was most of a projection rebuild's time. Timestamps
# are unique, so they are not kept. A full memo starts over.
_MEMOS: dict[str, dict[str, Any]] = {"uuid_hex": {}, "decimal_str": {}, "money": {}}
_MEMO_LIMIT = 50_000


def _decode(kind: str, data: Any) -> Any:
    memo = _MEMOS.get(kind)
    if memo is None or type(data) is not str:
        return _DECODERS[kind](data if type(data) is str else _untag(data))
    value = memo.get(data)
    if value is None:
        if len(memo) >= _MEMO_LIMIT:
            memo.clear()
        value = memo[data] = _DECODERS[kind](data)
    return value


class MoneyAsStr(Transcoding):
    """``Money`` for the library's own ``JSONTranscoder`` (same tag as ours)."""

    type = Money
    name = "money"

    def encode(self, obj: Any) -> str:
        return str(obj)

    def decode(self, data: Any) -> Money:
        return Money(str(data))


def _tag(value: Any) -> Any:
    kind = type(value)
    if kind in _ENCODERS:
        name, encode = _ENCODERS[kind]
        return {"_type_": name, "_data_": encode(value)}
    if kind is list or kind is tuple:
        return [_tag(item) for item in value]
    if kind is dict:
        return {key: _tag(item) for key, item in value.items()}
    if isinstance(value, datetime):  # aware datetimes with a tzinfo subclass
        return {"_type_": "datetime_iso", "_data_": value.isoformat()}
    return value


def _untag(value: Any) -> Any:
    kind = type(value)
    if kind is dict:
        if "_type_" in value and "_data_" in value and len(value) == 2:
            return _decode(value["_type_"], value["_data_"])
        return {key: _untag(item) for key, item in value.items()}
    if kind is list:
        return [_untag(item) for item in value]
    return value


_SCALARS = (str, int, bool, float, type(None))


def _untag_state(state: dict[str, Any]) -> dict[str, Any]:
    """An event's state is a flat dict: decode it in one pass, recursing only when needed."""
    decoded = {}
    for key, value in state.items():
        if type(value) in _SCALARS:
            decoded[key] = value
        elif type(value) is dict and len(value) == 2 and "_type_" in value:
            decoded[key] = _decode(value["_type_"], value["_data_"])
        else:
            decoded[key] = _untag(value)
    return decoded


class LedgerTranscoder(Transcoder):
    def encode(self, obj: Any) -> bytes:
        return orjson.dumps(_tag(obj))

    def decode(self, data: bytes) -> Any:
        state = orjson.loads(data)
        return _untag_state(state) if type(state) is dict else _untag(state)


class LedgerApplication(Application[UUID]):
    """One event table for every ledger event (``tokensea_events`` on PostgreSQL)."""

    name = "TokenSea"

    def construct_transcoder(self) -> Transcoder:
        return LedgerTranscoder()


def open_application(db: Database, *, read_only: bool = False) -> LedgerApplication:
    """The application on ``db``, whose schema must be this release's (it changes none),
    with its recorder folding each save into the index tables (``ledger.effects``)."""
    try:
        conn = db.connect(read_only=read_only)
    except LedgerError:
        raise
    except Exception as exc:
        if not isinstance(error := classify(exc), LedgerUnavailable):
            raise
        raise LedgerUnavailable(f"cannot open the ledger at {db.redacted()}: {error}") from exc
    try:
        require_current(db, conn)
    finally:
        conn.close()
    app = LedgerApplication(env=db.eventsourcing_env())
    app.recorder.effects = Effects(db)  # type: ignore[attr-defined]
    app.recorder.decode = app.mapper.to_domain_event  # type: ignore[attr-defined]  # for the chain's digests
    return app
