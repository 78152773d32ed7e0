"""The auditor's check: recompute every derived value from the events and compare.

Every column of every table TokenSea derives from the events is compared exactly: the
ledger's index tables (``ts_users``, ``ts_keys``, whose ``held`` must equal the sum of
their holds) and the read models (balances per user and key, ``last_used_at``
included; the request log, all of its columns; daily and hourly usage with every token
kind).
Missing and extra rows are reported too. Each difference names the table, the row, the
column, what the events say and what was found.

By default the fold starts from the latest usable checkpoint (``projections.checkpoints``)
and reads only the events after it: the request log's rows up to the checkpoint were
compared when it was made, and never change; every other derived row is compared in
full. ``full=True`` starts from genesis, compares every request-log row, and checks each
stored checkpoint against the fold at its position. Request-log rows older than the
retention cut (``projections.retention``) may be gone; those still there must match.
The request log is compared a batch of events at a time (its rows by position range),
so memory grows with users, keys and usage rows, never with requests. A request charged
twice shows as its second charge's log row missing.

All reads happen in one snapshot (a repeatable-read, read-only transaction on
PostgreSQL, a read transaction on SQLite), so the comparison is exact while traffic
flows: each projection is compared with the fold of the events up to its own recorded
position, and the index tables with the fold of every event in the snapshot. The fold
(``projections.audit_fold``) is written apart from the code it audits.
"""

from __future__ import annotations

from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from domain.money import EXACT, format_decimal
from ledger.chain import GENESIS, digest, link
from ledger.database import Database, to_datetime, to_decimal, to_uuid
from ledger.log import EventLog
from projections import checkpoints
from projections.audit_fold import (
    KEY_BALANCES,
    KEYS,
    LOGS,
    USAGE,
    USER_BALANCES,
    USERS,
    Fold,
    Normalize,
    Rows,
)
from projections.checkpoints import Checkpoint
from projections.store import ALL

PAGE = 5000


def _fmt(value: Any) -> str:
    if isinstance(value, Decimal):
        return format_decimal(value)
    if isinstance(value, tuple):
        return " ".join(_fmt(part) for part in value)
    return "null" if value is None else str(value)


class Diff:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def compare(self, table: str, expected: Rows, found: Rows) -> None:
        """Every expected row and column against what was found; extra rows too."""
        found = dict(found)
        for key, columns in expected.items():
            row = found.pop(key, None)
            if row is None:
                self.lines.append(f"{table} {_fmt(key)}: missing")
                continue
            for column, value in columns.items():
                if row[column] != value:
                    self.lines.append(
                        f"{table} {_fmt(key)} {column}: events say {_fmt(value)}, found {_fmt(row[column])}"
                    )
        for key in found:
            self.lines.append(f"{table} {_fmt(key)}: not in the ledger")


@dataclass
class Report:
    """What a verification covered and found."""

    lines: list[str]  # every difference ([] if none)
    base: Checkpoint | None  # where the fold started (None: genesis)
    fold: Fold = field(default_factory=Fold)  # the events' fold at the last position read
    # the fold where every projection has got to (the lowest position among them): a
    # checkpoint there can serve a rebuild of any projection at once; and the chain's hash there
    applied: Fold = field(default_factory=Fold)
    applied_chain: bytes = GENESIS

    @property
    def first(self) -> int:
        """The first position whose event was read (the one after the checkpoint's)."""
        return 1 if self.base is None else self.base.position + 1

    @property
    def last(self) -> int:
        return self.fold.position


def checkpoint(db: Database, events: EventLog,
               progress: Callable[[int, int], None] | None = None) -> tuple[Checkpoint | None, Report]:
    """Verify from the latest checkpoint and, if nothing differs and the projections
    have applied new events, record a checkpoint where they all have got to (else None)."""
    report = audit(db, events, progress)
    if report.lines or report.applied.position == (0 if report.base is None else report.base.position):
        return None, report
    return checkpoints.record(db, report.applied, report.applied_chain), report


def verify(db: Database, events: EventLog, progress: Callable[[int, int], None] | None = None,
           *, full: bool = False) -> list[str]:
    """Every difference between the events and what was derived from them ([] if none)."""
    return audit(db, events, progress, full=full).lines


def audit(db: Database, events: EventLog, progress: Callable[[int, int], None] | None = None,
          *, full: bool = False) -> Report:
    """Verify from the latest usable checkpoint, or from genesis if ``full``."""
    conn = db.connect(read_only=True)
    try:
        cur = conn.cursor()
        cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" if db.is_postgres else "BEGIN")
        try:
            return _verify(db, events, cur, full, progress)
        finally:
            cur.execute("ROLLBACK")
    finally:
        conn.close()


def _rows(cur: Any, db: Database, table: str, keys: tuple[str, ...], normalize: Normalize,
          where: str = "", params: tuple[Any, ...] = ()) -> Rows:
    """``table``'s rows by key (one column: its value; several: a tuple), each normalized."""
    columns = ", ".join((*keys, *normalize))
    cur.execute(db.sql(f"SELECT {columns} FROM {table}{where}"), list(params))
    found: Rows = {}
    for record in cur.fetchall():
        key = tuple(to_uuid(record[k]) if k.endswith("_id") and k != "request_id" else record[k] for k in keys)
        found[key[0] if len(key) == 1 else key] = {
            column: convert(record[column]) if record[column] is not None else None
            for column, convert in normalize.items()
        }
    return found


def _verify(db: Database, events: EventLog, cur: Any, full: bool,
            progress: Callable[[int, int], None] | None) -> Report:
    diff = Diff()
    stored = checkpoints.stored(cur)
    base, refused = (None, []) if full else checkpoints.latest(cur, events.chain_at_with)
    diff.lines.extend(refused)
    fold = Fold() if base is None else base.fold()
    start = fold.position
    cur.execute("SELECT name, position FROM proj_tracking")
    recorded = {row["name"]: int(row["position"]) for row in cur.fetchall()}
    positions = {p.name: recorded.get(p.name, 0) for p in ALL}  # one that never ran is at 0
    for name in [name for name, at in positions.items() if at < start]:
        diff.lines.append(f"projection {name} is at position {positions.pop(name)}, before the checkpoint at "
                          f"{start}: let it catch up, or verify --full")
    pending = sorted(stored, key=lambda c: c.position) if full else []
    folds: dict[str, Fold] = {}
    chains: dict[str, bytes] = {}
    previous = GENESIS if base is None else base.chain  # the chain's hash before the next event
    logs_at = positions.get("request_logs")
    cut = _retention_cut(cur)
    head = events.head()
    while batch := events.read_chained_with(cur, fold.position, PAGE):
        low = fold.position
        for number, event, stored_hash in batch:
            while pending and pending[0].position < number:
                _check_checkpoint(pending.pop(0), fold, previous, diff)
            for name, at in positions.items():
                if name not in folds and at < number:  # the projection stops before this event
                    folds[name], chains[name] = deepcopy(fold), previous
            if link(previous, digest(event)) != stored_hash:  # each altered event, not all after it
                diff.lines.append(f"ledger chain: position {number}: its hash does not follow from its contents "
                                  "and the hash before it")
            previous = stored_hash
            fold.apply(number, event)
        if logs_at is not None:
            _check_logs(db, cur, fold, (low, fold.position), logs_at, cut, diff)
        if progress is not None:
            progress(fold.position, head)
    if logs_at is not None:  # rows past the last event are in no batch's range
        _check_logs(db, cur, fold, (fold.position, None), logs_at, cut, diff)
    for checkpoint in pending:
        _check_checkpoint(checkpoint, fold, previous, diff)
    for request_id in fold.duplicate_charges:
        diff.lines.append(f"request {request_id}: charged more than once")
    _check_index(db, cur, fold, diff)
    balances = folds.get("balances", fold)
    if "balances" in positions:
        diff.compare("proj_user_balances", balances.user_balances,
                     _rows(cur, db, "proj_user_balances", ("user_id",), USER_BALANCES))
        diff.compare("proj_key_balances", balances.key_balances,
                     _rows(cur, db, "proj_key_balances", ("key_id",), KEY_BALANCES))
    for name, table, bucket, rows in (("daily_usage", "proj_usage_daily", "day", "daily"),
                                      ("hourly_usage", "proj_usage_hourly", "hour", "hourly")):
        if name in positions:
            diff.compare(table, getattr(folds.get(name, fold), rows),
                         _rows(cur, db, table, ("user_id", bucket, "model"), USAGE))
    lowest = min(positions, key=lambda name: positions[name], default=None)
    if lowest is None or lowest not in folds:
        return Report(diff.lines, base, fold, fold, previous)
    return Report(diff.lines, base, fold, folds[lowest], chains[lowest])


def _retention_cut(cur: Any) -> datetime | None:
    cur.execute("SELECT cut FROM proj_log_retention")
    row = cur.fetchone()
    return None if row is None else to_datetime(row["cut"])


def _check_logs(db: Database, cur: Any, fold: Fold, span: tuple[int, int | None], applied: int,
                cut: datetime | None, diff: Diff) -> None:
    """The request-log rows of positions in ``span`` (after its first, up to its last)
    against the batch of events just folded, whose rows are then let go: the log is
    compared a batch at a time, so a full verify's memory does not grow with history.
    Rows the projection has not applied yet are not expected; rows older than the
    retention cut may be gone, and those still there must match."""
    low, high = span
    where, params = (" WHERE position > %s", (low,)) if high is None else (
        " WHERE position > %s AND position <= %s", (low, high))
    found = _rows(cur, db, "proj_request_logs", ("request_id",), LOGS, where, params)
    expected = {
        key: columns for key, columns in fold.logs.items()
        if columns["position"] <= applied and (key in found or cut is None or columns["created_at"] >= cut)
    }
    diff.compare("proj_request_logs", expected, found)
    fold.logs.clear()


def _check_checkpoint(checkpoint: Checkpoint, fold: Fold, chain: bytes, diff: Diff) -> None:
    """A stored checkpoint must be the fold of the events at its position, byte for byte,
    with the chain's hash there."""
    if fold.position != checkpoint.position or chain != checkpoint.chain or fold.state() != checkpoint.state:
        diff.lines.append(f"{checkpoint.describe()} does not match the events")


def _check_index(db: Database, cur: Any, fold: Fold, diff: Diff) -> None:
    """``ts_users`` and ``ts_keys``, with the inbox of charges not yet folded into their
    rows (``ledger.schema``) counted in; ``held`` and ``holds`` against the holds
    themselves. (The rate windows' levels are the operational state of admission, of
    no money and not derived from events: they are not compared.)"""
    held: dict[Any, tuple[Decimal, int]] = {}
    cur.execute("SELECT user_id, key_id, amount FROM ts_holds")
    for row in cur.fetchall():
        for account in (to_uuid(row["user_id"]), to_uuid(row["key_id"])):
            amount, count = held.get(account, (Decimal(0), 0))
            held[account] = (EXACT.add(amount, to_decimal(row["amount"])), count + 1)
    pending: dict[Any, tuple[Decimal, Decimal, int]] = {}
    cur.execute("SELECT account_id, released, cost, holds FROM ts_settled")
    for row in cur.fetchall():
        cost, released, holds = pending.get(to_uuid(row["account_id"]), (Decimal(0), Decimal(0), 0))
        pending[to_uuid(row["account_id"])] = (EXACT.add(cost, to_decimal(row["cost"])),
                                               EXACT.add(released, to_decimal(row["released"])),
                                               holds + int(row["holds"]))
    for table, key, normalize, expected in (("ts_users", "user_id", USERS, fold.users),
                                            ("ts_keys", "key_id", KEYS, fold.keys)):
        found = _rows(cur, db, table, (key,), normalize)
        for account, row in found.items():
            cost, released, holds = pending.get(account, (Decimal(0), Decimal(0), 0))
            row["used"] = EXACT.add(row["used"], cost)
            row["held"] = EXACT.subtract(row["held"], released)
            row["holds"] = row["holds"] - holds
        wanted = {
            account: {**columns, "held": held.get(account, (Decimal(0), 0))[0], "holds": held.get(account, (0, 0))[1]}
            for account, columns in expected.items()
        }
        diff.compare(table, wanted, found)
