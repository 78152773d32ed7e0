"""The hash chain (``ledger.chain``): its canonical form survives the trip through the
event store and an export, and the stored chain is unbroken and in notification order
whoever appends (charges by the group commit, commands by the event store), from any
number of processes, on SQLite and on PostgreSQL."""

from __future__ import annotations

import dataclasses
import importlib
import itertools
import multiprocessing
import pkgutil
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson
import pytest
from eventsourcing.domain import DomainEvent
from eventsourcing.persistence import Mapper
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import domain
from domain.money import Money
from ledger import Database, Hold, Ledger
from ledger.application import LedgerTranscoder
from ledger.audit import audit
from ledger.chain import GENESIS, canonical, canonical_of_line, check, digest, extend, link
from ledger.export import line
from ledger.log import EventLog
from tests.ledger import workers
from tests.ledger.helpers import charge, facts, new_key, register
from tests.ledger.test_ledger import _reports

# -- the canonical form -------------------------------------------------------------------

ENVELOPE = ("originator_id", "originator_version", "timestamp", "originator_topic")
UNUSED = ".Created"  # each aggregate's placeholder event class, never recorded


def event_classes() -> list[type]:
    """Every event class the domain records."""
    found = []
    for module in pkgutil.iter_modules(domain.__path__):
        loaded = importlib.import_module(f"domain.{module.name}")
        for aggregate in vars(loaded).values():
            if isinstance(aggregate, type) and aggregate.__module__ == loaded.__name__:
                found += [
                    cls for cls in vars(aggregate).values()
                    if isinstance(cls, type) and issubclass(cls, DomainEvent) and hasattr(cls, "TOPIC")
                    and not cls.TOPIC.endswith(UNUSED)
                ]
    return found


offsets = st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(lambda minutes: timezone(timedelta(minutes=minutes)))
moments = st.datetimes(timezones=offsets) | st.datetimes(timezones=st.just(timezone.utc))
decimals = st.builds(lambda digits, places: Decimal(digits).scaleb(-places),
                     st.integers(-(10**15 - 1), 10**15 - 1), st.integers(0, 12))
BASE = {
    "str": st.text(),
    "int": st.integers(-(2**63), 2**63 - 1),
    "bool": st.booleans(),
    "UUID": st.uuids(),
    "datetime": moments,
    "Decimal": decimals,
    "Money": st.builds(lambda d: Money(abs(d) % Decimal(10**12)), decimals),
}


def strategy(annotation: str) -> st.SearchStrategy[Any]:
    if annotation.endswith(" | None"):
        return st.none() | strategy(annotation.removesuffix(" | None"))
    if annotation.startswith("list[") and annotation.endswith("]"):
        items = strategy(annotation[5:-1])
        return st.lists(items, max_size=4) | st.lists(items, max_size=4).map(tuple)  # a tuple stored is a list read
    return BASE[annotation]  # a KeyError: a new field type that this test (and ledger.chain) must learn


@st.composite
def any_event(draw: st.DrawFn) -> Any:
    cls = draw(st.sampled_from(event_classes()))
    values = {}
    for field in dataclasses.fields(cls):
        if field.name == "originator_topic":
            values[field.name] = "domain:Aggregate"
        elif field.name == "originator_version":
            values[field.name] = draw(st.integers(1, 2**31))
        else:
            values[field.name] = draw(strategy(str(field.type)))
    return cls(**values)


MAPPER = Mapper[UUID](transcoder=LedgerTranscoder())


def test_every_recorded_event_type_is_generated() -> None:
    topics = {cls.TOPIC for cls in event_classes()}
    assert {"tokensea.TokensConsumed", "tokensea.QuotaGranted", "tokensea.KeyCreated", "tokensea.UserRegistered",
            "tokensea.UserPlansAssigned", "tokensea.InviteRewardSlotTaken"} <= topics
    assert len(topics) >= 15  # and any added later: each is drawn by the test below
    # A field named like a key of the export line's envelope would be overwritten there
    # (or, for "id" and "hash", left out of the auditor's canonical form).
    for cls in event_classes():
        assert not {f.name for f in dataclasses.fields(cls)} & {"id", "hash", "topic", "aggregateId", "version"}, cls


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(any_event(), st.integers(1, 2**62), st.binary(min_size=32, max_size=32))
def test_the_canonical_form_is_what_an_auditor_recomputes_from_the_export(event: Any, position: int,
                                                                          chain: bytes) -> None:
    """At append time the chain hashes ``canonical(event)``; the export is written from the
    event decoded from the store; an auditor parses the line and re-serializes it."""
    at_append = canonical(event)
    stored = MAPPER.to_domain_event(MAPPER.to_stored_event(event))
    assert canonical(stored) == at_append
    written = line(position, stored, chain)
    parsed = orjson.loads(written)
    assert (parsed["id"], parsed["hash"]) == (position, chain.hex())
    assert canonical_of_line(parsed) == at_append
    assert canonical_of_line(orjson.loads(orjson.dumps(parsed, option=orjson.OPT_SORT_KEYS))) == at_append
    assert "password_hash" not in parsed
    # The chain over two such lines checks, and so does the offline audit of them.
    first, second = link(GENESIS, digest(event)), link(link(GENESIS, digest(event)), digest(event))
    assert check(GENESIS, [(position, stored, first), (position + 1, parsed, second)]) is None
    lines = [line(position, stored, first), line(position + 1, stored, second)]
    assert audit(lines).problems == []


def test_check_names_the_first_bad_link() -> None:
    canonicals = [orjson.dumps({"n": n}) for n in range(5)]
    hashes = extend(GENESIS, [digest_of(c) for c in canonicals])
    items = [(n + 1, c, h) for n, (c, h) in enumerate(zip(canonicals, hashes, strict=True))]
    assert check(GENESIS, items) is None
    assert check(GENESIS, items[2:]) == 3  # the predecessor is not the genesis
    assert check(hashes[1], items[2:]) is None
    changed = [*items[:3], (4, orjson.dumps({"n": 99}), hashes[3]), items[4]]
    assert check(GENESIS, changed) == 4
    assert check(GENESIS, [items[0], items[2]]) == 3  # one removed


def test_the_audit_accepts_holes_in_positions_but_not_in_the_chain() -> None:
    records = [{"topic": "x", "n": n} for n in range(4)]
    hashes = extend(GENESIS, [digest_of(canonical_of_line(r)) for r in records])
    positions = [1, 2, 5, 6]  # 3 and 4 were drawn by a transaction that failed
    lines = [orjson.dumps({"id": p, **r, "hash": h.hex()}) for p, r, h in zip(positions, records, hashes, strict=True)]
    report = audit(lines)
    assert report.problems == [] and (report.head_position, report.head_hash) == (6, hashes[-1])
    assert audit([lines[0], lines[1], lines[3]]).problems == [
        "line 3 (position 6): positions 3 to 5 are missing: the chain does not continue from position 2"]


def digest_of(canonical_form: bytes) -> bytes:
    import hashlib

    return hashlib.sha256(canonical_form).digest()


# -- the stored chain ---------------------------------------------------------------------


def recomputed(events: EventLog) -> list[tuple[int, bytes, bytes]]:
    """Every event's (position, stored hash, hash recomputed from the genesis)."""
    rows, previous, position = [], GENESIS, 0
    while batch := events.read_chained(position, 1000):
        for number, event, stored in batch:
            previous = link(previous, digest(event))
            rows.append((number, stored, previous))
        position = batch[-1][0]
    return rows


def assert_unbroken(events: EventLog) -> list[tuple[int, bytes, bytes]]:
    rows = recomputed(events)
    positions = [position for position, _, _ in rows]
    assert positions == sorted(set(positions))
    broken = [position for position, stored, expected in rows if stored != expected]
    assert broken == [], f"the chain breaks at positions {broken[:5]}"
    assert events.head_hash() == ((rows[-1][0], rows[-1][1]) if rows else (0, GENESIS))
    return rows


def test_the_chain_is_unbroken_and_in_ledger_order_across_processes(database_url: str) -> None:
    """Two processes charge from many threads while each also grants and makes keys:
    recomputed from the genesis, every stored hash agrees, in notification order."""
    setup = Ledger(Database.from_url(database_url))
    alice = register(setup, "alice", quota="100000")  # never refused: every attempt is charged
    key = new_key(setup, alice)
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    children = [
        context.Process(target=workers.spend_and_grant,
                        args=(database_url, str(alice), str(key), f"p{n}", 6, 20, 15, results))
        for n in range(2)
    ]
    for child in children:
        child.start()
    reports = _reports(results, children)
    for child in children:
        child.join(60)
        assert child.exitcode == 0
    charged = sum(len(report[0]) for report in reports)
    granted = sum(len(report[1]) for report in reports)
    events = EventLog(Database.from_url(database_url), read_only=True)
    try:
        rows = assert_unbroken(events)
        topics = [type(event).TOPIC for _, event in _all(events)]
    finally:
        events.close()
        setup.close()
    assert charged == 2 * 6 * 20 and granted == 2 * 15
    assert topics.count("tokensea.TokensConsumed") == charged
    assert topics.count("tokensea.QuotaGranted") == granted + 1  # and the signup grant
    # Commands and charges were interleaved: each process's first thread alternated them,
    # and merging in other events never takes a switch away.
    kinds = ["charge" if t == "tokensea.TokensConsumed" else "command" for t in topics]
    switches = sum(1 for a, b in itertools.pairwise(kinds) if a != b)
    assert switches >= 2 * 15 - 1, kinds
    assert len(rows) == len(topics)


def _all(events: EventLog) -> list[tuple[int, Any]]:
    found, position = [], 0
    while batch := events.read(position, 1000):
        found += batch
        position = batch[-1][0]
    return found


def test_reads_of_the_chain(database_url: str) -> None:
    ledger = Ledger(Database.from_url(database_url))
    events = EventLog(ledger.db)
    try:
        assert events.head_hash() == (0, GENESIS)
        assert events.chain_at(0) == GENESIS
        assert events.chain_at(1) is None
        alice = register(ledger, "alice", quota="10")
        key = new_key(ledger, alice)
        ledger.admit(Hold(facts("r1", alice, key), Money(1), ledger.instance_id))
        ledger.settle(charge("r1", alice, key, tokens=50, reserved="1"))
        rows = events.read_chained(0, 100)
        assert [type(event).TOPIC for _, event, _ in rows] == [
            "tokensea.UserRegistered", "tokensea.QuotaGranted", "tokensea.KeyCreated", "tokensea.TokensConsumed"]
        assert check(GENESIS, rows) is None
        assert check(rows[1][2], rows[2:]) is None
        assert [events.chain_at(position) for position, _, _ in rows] == [chain for _, _, chain in rows]
        assert events.chain_at(rows[-1][0] + 1) is None
        assert events.head_hash() == (rows[-1][0], rows[-1][2])
        assert [(p, c) for p, _, c in events.read_chained(rows[1][0], 1)] == [(rows[2][0], rows[2][2])]
        assert [(p, e) for p, e, _ in rows] == [(p, e) for p, e in events.read(0, 100)]
    finally:
        events.close()
        ledger.close()


def test_a_changed_event_in_the_database_breaks_the_chain_there(database_url: str) -> None:
    ledger = Ledger(Database.from_url(database_url))
    alice = register(ledger, "alice", quota="10")
    key = new_key(ledger, alice)
    for n in range(3):
        ledger.admit(Hold(facts(f"r{n}", alice, key), Money(1), ledger.instance_id))
        ledger.settle(charge(f"r{n}", alice, key, tokens=50, reserved="1"))
    events = EventLog(ledger.db)
    try:
        rows = events.read_chained(0, 100)
        victim = rows[4][0]  # the second charge
        stored = next(r for r in rows if r[0] == victim)[1]
        forged = MAPPER.to_stored_event(dataclasses.replace(stored, cost=Money("0.01")))
        table, column = ("tokensea_events", "notification_id") if ledger.db.is_postgres else ("stored_events", "rowid")
        conn = ledger.db.connect()
        try:
            conn.execute(ledger.db.sql(f"UPDATE {table} SET state = %s WHERE {column} = %s"), [forged.state, victim])
        finally:
            conn.close()
        assert check(GENESIS, events.read_chained(0, 100)) == victim
    finally:
        events.close()
        ledger.close()


def test_an_append_without_its_hash_is_refused(database_url: str) -> None:
    """A writer that does not know the chain (an older release still running during an
    upgrade) fails instead of breaking it."""
    db = Database.from_url(database_url)
    ledger = Ledger(db)
    register(ledger, "alice")
    ledger.close()
    table = "tokensea_events" if db.is_postgres else "stored_events"
    conn = db.connect()
    try:
        with pytest.raises(Exception, match="chain"):
            conn.execute(db.sql(f"INSERT INTO {table} (originator_id, originator_version, topic, state) "
                                "VALUES (%s, 1, 'x', %s)"),
                         [str(UUID(int=7)) if not db.is_postgres else UUID(int=7), b"{}"])
    finally:
        conn.close()


def test_the_datetime_offset_is_kept(database_url: str) -> None:
    """A key's expiry given with an offset is hashed as it is exported, offset and all."""
    ledger = Ledger(Database.from_url(database_url))
    from ledger import commands

    alice = register(ledger, "alice")
    when = datetime(2030, 1, 2, 3, 4, 5, 600, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    ledger.run(commands.CreateKey(alice, "k", "digest-k", "tsk-k", Money(Decimal("1.50")), ("a", "b"), None, when))
    events = EventLog(ledger.db)
    try:
        rows = assert_unbroken(events)
        created = [event for _, event, _ in events.read_chained(0, 10) if type(event).TOPIC == "tokensea.KeyCreated"]
        parsed = orjson.loads(line(rows[-1][0], created[0], rows[-1][1]))
        assert parsed["expires_at"] == "2030-01-02T03:04:05.000600+05:30"
        assert parsed["models"] == ["a", "b"] and parsed["quota"] == "1.5"
    finally:
        events.close()
        ledger.close()
