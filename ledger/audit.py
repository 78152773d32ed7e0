"""``tokensea ledger audit``: check an export offline, with nothing but the file.

The chain (``ledger.chain``) is recomputed line by line: each line's hash must be the
sha256 of the previous line's hash and of its own canonical form, and positions must
ascend (holes are possible: a transaction that failed leaves its ids unused; the chain,
which links events and not ids, says whether anything is missing). From the same
lines the audit recomputes every user's granted and used quota and request count, and
every key's used quota and request count, and reports the head (last position, hash).

What each problem looks like (one per line of the file at most; the check goes on from
the line's own hash, so one altered line is one problem):

- ``line 7 (position 12): hash does not match its contents`` — the line was changed
  (or, if it is the one after a changed line whose hash was recomputed, that one);
- ``line 9 (position 15): position 14 is missing: the chain does not continue from
  position 13`` — a line was removed;
- ``line 9 (position 14): out of order: it comes after position 15 (line 8)`` — lines were
  swapped, moved, repeated or inserted; a removal reported before it whose positions
  this line holds is reported as ``out of order`` too;
- ``published head 12:ab…: line 7 (position 12) has hash cd…`` or ``published head
  12:ab…: position 12 is not in the export`` — the file does not extend that head;
- ``line 3: not a JSON object (…)``, ``line 3: no "id" (position)``, ``line 3: "hash" is
  not 64 hex digits``.

An export made with ``--since N`` starts after the genesis: its first line's link can be
checked with the hash at position N (``after``, e.g. the last hash of the export
before); without it, the first line's hash is taken on trust (reported in ``first_link``).

Pure: no database, no configuration.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson

from domain.money import EXACT, format_decimal
from ledger.chain import GENESIS

_SHA256 = hashlib.sha256
_SORTED = orjson.OPT_SORT_KEYS
_GRANTED = "tokensea.QuotaGranted"
_CONSUMED = "tokensea.TokensConsumed"
_KEY_CREATED = "tokensea.KeyCreated"
_ZERO = Decimal(0)
MAX_PROBLEMS = 100  # reported in full; beyond, only counted


@dataclass
class Account:
    granted: Decimal = _ZERO
    used: Decimal = _ZERO
    requests: int = 0
    owner: str | None = None  # a key's user


@dataclass
class Report:
    events: int = 0
    head_position: int = 0
    head_hash: bytes = GENESIS
    first_position: int | None = None
    first_link: str = "genesis"  # "genesis", "after" (checked with --after) or "trusted"
    problems: list[str] = field(default_factory=list)
    more_problems: int = 0
    users: dict[str, Account] = field(default_factory=dict)
    keys: dict[str, Account] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, text: str) -> int | None:
        """Record a problem; its index in ``problems`` (None beyond ``MAX_PROBLEMS``)."""
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)
            return len(self.problems) - 1
        self.more_problems += 1
        return None

    def summary(self) -> str:
        """One line for the end of the audit."""
        if not self.ok:
            more = f" (and {self.more_problems} more)" if self.more_problems else ""
            return f"ledger audit: {len(self.problems) + self.more_problems} problem(s){more}"
        head = f"{self.head_position}:{self.head_hash.hex()}"
        if self.first_link == "trusted":
            return (f"ledger audit: {self.events} events chain from position {self.first_position} to {head}; the "
                    "first line's link to the events before it is taken on trust (pass --after HASH, the hash at the "
                    "position the export started after)")
        start = "the hash given with --after" if self.first_link == "after" else "the genesis"
        return f"ledger audit: {self.events} events chain unbroken from {start} to {head}"

    def totals(self) -> list[dict[str, Any]]:
        """A record per user and per key, then the head: what the CLI prints."""
        rows: list[dict[str, Any]] = [
            {"user": user_id, "granted": format_decimal(a.granted), "used": format_decimal(a.used),
             "requests": a.requests}
            for user_id, a in sorted(self.users.items())
        ]
        rows += [
            {"key": key_id, "user": a.owner, "used": format_decimal(a.used), "requests": a.requests}
            for key_id, a in sorted(self.keys.items())
        ]
        rows.append({"head": {"position": self.head_position, "hash": self.head_hash.hex()}, "events": self.events,
                     "firstPosition": self.first_position, "firstLink": self.first_link})
        return rows


def parse_head(text: str) -> tuple[int, bytes]:
    """``POSITION:HEX`` (as ``tokensea ledger head`` prints it) → (position, hash)."""
    position, _, hex_hash = text.partition(":")
    try:
        number, value = int(position), bytes.fromhex(hex_hash)
    except ValueError:
        raise ValueError(f"{text!r} is not POSITION:HASH (a position, a colon and 64 hex digits)") from None
    if number < 0 or len(value) != 32:
        raise ValueError(f"{text!r} is not POSITION:HASH (a position, a colon and 64 hex digits)")
    return number, value


def parse_hash(text: str) -> bytes:
    try:
        value = bytes.fromhex(text)
    except ValueError:
        value = b""
    if len(value) != 32:
        raise ValueError(f"{text!r} is not a hash (64 hex digits)")
    return value


def audit(lines: Iterable[bytes | str], *, after: bytes | None = None,
          heads: Iterable[tuple[int, bytes]] = ()) -> Report:
    """Check the chain of an export's ``lines`` and recompute its totals (see the module)."""
    report = Report()
    users, keys = report.users, report.keys
    published = dict(heads)
    seen_heads: dict[int, tuple[int, bytes]] = {}
    # Removals reported so far: (first missing, last missing, line, position, problem index).
    gaps: list[tuple[int, int, int, int, int | None]] = []
    previous = GENESIS if after is None else after
    last = last_line = 0  # the last position in order, and its line
    add = EXACT.add
    loads, dumps, sha256 = orjson.loads, orjson.dumps, _SHA256
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            parsed = loads(raw)
        except orjson.JSONDecodeError as exc:
            report.problem(f"line {number}: not a JSON object ({exc})")
            continue
        if type(parsed) is not dict:
            report.problem(f"line {number}: not a JSON object")
            continue
        position = parsed.pop("id", None)
        if type(position) is not int or position <= 0:
            report.problem(f"line {number}: no \"id\" (position)")
            continue
        stored_hex = parsed.pop("hash", None)
        try:
            stored = bytes.fromhex(stored_hex) if type(stored_hex) is str else b""
        except ValueError:
            stored = b""
        if len(stored) != 32:
            report.problem(f"line {number} (position {position}): \"hash\" is not 64 hex digits")
            continue
        report.events += 1
        expected = sha256(previous + sha256(dumps(parsed, option=_SORTED)).digest()).digest()
        if report.first_position is None:
            report.first_position = position
            if expected != stored:
                if after is None and position > 1:  # maybe not the ledger's first event: an export --since
                    report.first_link = "trusted"
                elif after is None:
                    report.problem(f"line {number} (position {position}): hash does not match its contents")
                else:
                    report.problem(f"line {number} (position {position}): does not continue from the hash given "
                                   "with --after")
            elif after is not None:
                report.first_link = "after"
        elif position <= last:
            report.problem(f"line {number} (position {position}): out of order: it comes after position {last} "
                           f"(line {last_line})")
            for low, high, gap_line, gap_position, index in gaps:
                if low <= position <= high and index is not None:  # that "removal" was a move
                    report.problems[index] = (f"line {gap_line} (position {gap_position}): out of order: position "
                                              f"{position} comes after it, on line {number}")
            continue  # the chain goes on from the last line in order; totals are moot now
        elif expected != stored:
            if position > last + 1:
                missing = f"position {last + 1} is" if position == last + 2 else \
                    f"positions {last + 1} to {position - 1} are"
                index = report.problem(f"line {number} (position {position}): {missing} missing: the chain does not "
                                       f"continue from position {last}")
                gaps.append((last + 1, position - 1, number, position, index))
            else:
                report.problem(f"line {number} (position {position}): hash does not match its contents")
        previous = stored  # go on from the line's own hash: one altered line, one problem
        if position in published:
            seen_heads[position] = (number, stored)
        last, last_line = position, number
        report.head_position, report.head_hash = position, stored
        topic = parsed.get("topic")
        try:
            if topic == _CONSUMED:
                cost = Decimal(parsed["cost"])
                user = users.get(parsed["user_id"]) or users.setdefault(parsed["user_id"], Account())
                user.used = add(user.used, cost)
                user.requests += 1
                key = keys.get(parsed["key_id"]) or keys.setdefault(parsed["key_id"], Account(owner=parsed["user_id"]))
                key.used = add(key.used, cost)
                key.requests += 1
            elif topic == _GRANTED:
                user = users.get(parsed["user_id"]) or users.setdefault(parsed["user_id"], Account())
                user.granted = add(user.granted, Decimal(parsed["amount"]))
            elif topic == _KEY_CREATED:
                keys.setdefault(parsed["aggregateId"], Account()).owner = parsed["user_id"]
        except (KeyError, TypeError, ArithmeticError) as exc:
            report.problem(f"line {number} (position {position}): a {topic} without a valid {exc}")
    for position, expected_hash in sorted(published.items()):
        found = seen_heads.get(position)
        shown = f"{position}:{expected_hash.hex()}"
        if found is None:
            report.problem(f"published head {shown}: position {position} is not in the export")
        elif found[1] != expected_hash:
            report.problem(f"published head {shown}: line {found[0]} (position {position}) has hash {found[1].hex()}")
    return report
