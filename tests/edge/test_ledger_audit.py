"""``tokensea ledger head``, ``export`` and ``audit``: an auditor checks an export offline
(no database, no configuration) and recomputes the balances from the file alone; every
kind of altered copy fails at the line and position that were altered, with exit 1."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import pytest

from domain.grants import GrantReason
from domain.money import Money
from edge.cli import EXIT_FOUND, EXIT_OK, EXIT_USAGE
from ledger import Database, Hold, Ledger, commands
from ledger.migrations import upgrade
from ledger.replay import replay
from tests.conftest import fresh_database
from tests.edge.test_cli import one_line, tokensea
from tests.ledger.helpers import charge, facts, new_key, register


def offline(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """``tokensea`` with no database URL and no configuration at all."""
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], input=stdin, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "TOKENSEA_CONFIG": "/nonexistent/tokensea.toml"},
                          timeout=120, check=False)


def fill(url: str, prefix: str, charges: int) -> dict[str, tuple[UUID, UUID]]:
    """Two users with a key each, grants, and ``charges`` charges per key."""
    ledger = Ledger(Database.from_url(url))
    accounts = {}
    try:
        for name in ("ann", "bob"):
            user_id = register(ledger, f"{prefix}{name}", quota="50")
            key = new_key(ledger, user_id, name=f"{prefix}key")
            ledger.run(commands.GrantQuota(user_id, Money("2.5"), GrantReason.ADMIN, "audit", f"{prefix}{name}-g"))
            for n in range(charges):
                request = f"{prefix}{name}-{n}"
                ledger.admit(Hold(facts(request, user_id, key), Money(2), ledger.instance_id))
                ledger.settle(charge(request, user_id, key, tokens=37 * n + 3, reserved="2"))
            # A second charge for a request is refused: it leaves nothing in the chain.
            assert not ledger.settle(charge(f"{prefix}{name}-0", user_id, key, tokens=1, reserved="2"))
            accounts[name] = (user_id, key)
    finally:
        ledger.close()
    return accounts


def ledger_totals(url: str) -> tuple[dict[str, tuple[str, str, int]], dict[str, tuple[str, str, int]]]:
    """The ledger's own replay of its events (``ledger.replay``), from the database."""
    ledger = Ledger(Database.from_url(url))
    try:
        totals = replay(ledger.app)
    finally:
        ledger.close()
    users = {str(u): (plain(str(t.granted)), plain(str(t.used)), t.requests) for u, t in totals.users.items()}
    keys = {str(k): (str(t.owner), plain(str(t.used)), t.requests) for k, t in totals.keys.items()}
    return users, keys


def plain(value: str) -> str:
    return str(Decimal(value).normalize())


def test_an_export_audits_offline_and_its_totals_are_the_ledgers(database_url: str, tmp_path: Path) -> None:
    fill(database_url, "a", charges=6)
    head = tokensea("ledger", "head", url=database_url)
    assert head.returncode == EXIT_OK, head.stderr
    exported = tokensea("ledger", "export", url=database_url)
    assert exported.returncode == EXIT_OK, exported.stderr
    lines = exported.stdout.splitlines()
    last = json.loads(lines[-1])
    assert head.stdout.strip() == f"{last['id']}:{last['hash']}"  # `ledger head` agrees with the last line
    as_json = json.loads(tokensea("ledger", "head", "--json", url=database_url).stdout)
    assert as_json == {"position": last["id"], "hash": last["hash"]}

    path = tmp_path / "events.jsonl"
    path.write_text(exported.stdout)
    audited = offline("ledger", "audit", str(path))
    assert audited.returncode == EXIT_OK, audited.stdout + audited.stderr
    assert "chain unbroken from the genesis" in one_line(audited)
    rows = [json.loads(row) for row in audited.stdout.splitlines()]
    users = {row["user"]: row for row in rows if "user" in row and "key" not in row}
    keys = {row["key"]: row for row in rows if "key" in row}
    want_users, want_keys = ledger_totals(database_url)
    assert {u: (plain(r["granted"]), plain(r["used"]), r["requests"]) for u, r in users.items()} == want_users
    assert {k: (r["user"], plain(r["used"]), r["requests"]) for k, r in keys.items()} == want_keys
    assert sorted(r["requests"] for r in users.values()) == [6, 6]
    assert sorted(r["requests"] for r in keys.values()) == [6, 6]
    assert all(r["user"] in users for r in keys.values())  # each key's owner, from its KeyCreated
    assert rows[-1]["head"] == {"position": last["id"], "hash": last["hash"]} and rows[-1]["events"] == len(lines)
    assert offline("ledger", "audit", "-", stdin=exported.stdout).stdout == audited.stdout

    # A later export extends the earlier one: it contains the head published then.
    fill(database_url, "b", charges=2)
    later = tokensea("ledger", "export", url=database_url).stdout
    assert later.startswith(exported.stdout)
    published = head.stdout.strip()
    extends = offline("ledger", "audit", "--head", published, "-", stdin=later)
    assert extends.returncode == EXIT_OK, extends.stdout + extends.stderr
    position, hex_hash = published.split(":")
    forged = f"{position}:{'0' * 64}"
    differs = offline("ledger", "audit", "--head", forged, "-", stdin=later)
    assert differs.returncode == EXIT_FOUND
    assert differs.stdout.splitlines() == [
        f"published head {forged}: line {len(lines)} (position {position}) has hash {hex_hash}"]
    beyond = offline("ledger", "audit", "--head", f"{int(position) + 1000}:{hex_hash}", "-", stdin=later)
    assert beyond.returncode == EXIT_FOUND and "is not in the export" in beyond.stdout

    # An export --since N: its first link is checked with --after (the hash at N), else trusted.
    since = tokensea("ledger", "export", "--since", position, url=database_url).stdout
    assert since == later[len(exported.stdout):]
    chained = offline("ledger", "audit", "--after", hex_hash, "--head", f"{last['id']}:{last['hash']}", "-",
                      stdin=since)
    assert chained.returncode == EXIT_FOUND and "is not in the export" in chained.stdout  # that head is before it
    chained = offline("ledger", "audit", "--after", hex_hash, "-", stdin=since)
    assert chained.returncode == EXIT_OK and "from the hash given with --after" in one_line(chained)
    trusted = offline("ledger", "audit", "-", stdin=since)
    assert trusted.returncode == EXIT_OK and "taken on trust" in one_line(trusted)
    assert json.loads(trusted.stdout.splitlines()[-1])["firstLink"] == "trusted"
    wrong = offline("ledger", "audit", "--after", "ab" * 32, "-", stdin=since)
    assert wrong.returncode == EXIT_FOUND
    assert wrong.stdout.splitlines() == [
        f"line 1 (position {json.loads(since.splitlines()[0])['id']}): does not continue from the hash given with --after"]


@pytest.fixture(params=["sqlite", "postgres"])
def export_lines(request: pytest.FixtureRequest, tmp_path: Path) -> list[str]:
    with fresh_database(request.param, tmp_path) as url:
        upgrade(Database.from_url(url))
        fill(url, "c", charges=5)
        lines = tokensea("ledger", "export", url=url).stdout.splitlines()
    assert len(lines) >= 16
    return lines


def audit_of(lines: list[str]) -> tuple[int, list[str]]:
    result = offline("ledger", "audit", "-", stdin="\n".join(lines) + "\n")
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout.splitlines()


def charge_lines(lines: list[str]) -> list[int]:
    return [n for n, text in enumerate(lines) if json.loads(text)["topic"] == "tokensea.TokensConsumed"]


def position(text: str) -> int:
    return int(json.loads(text)["id"])


def test_each_kind_of_altered_copy_fails_where_it_was_altered(export_lines: list[str]) -> None:
    lines = export_lines
    assert audit_of(lines)[0] == EXIT_OK
    n = charge_lines(lines)[3]  # a charge in the middle (0-based index: line n + 1)

    changed = list(lines)
    record = json.loads(changed[n])
    record["cost"] = str(Decimal(record["cost"]) + 1)
    changed[n] = json.dumps(record)
    assert audit_of(changed) == (EXIT_FOUND, [f"line {n + 1} (position {position(lines[n])}): "
                                              "hash does not match its contents"])

    dropped = lines[:n] + lines[n + 1:]
    assert audit_of(dropped) == (EXIT_FOUND, [
        f"line {n + 1} (position {position(lines[n + 1])}): position {position(lines[n])} is missing: "
        f"the chain does not continue from position {position(lines[n - 1])}"])

    swapped = list(lines)
    swapped[n], swapped[n + 1] = swapped[n + 1], swapped[n]
    assert audit_of(swapped) == (EXIT_FOUND, [
        f"line {n + 1} (position {position(lines[n + 1])}): out of order: position {position(lines[n])} comes after "
        f"it, on line {n + 2}",
        f"line {n + 2} (position {position(lines[n])}): out of order: it comes after position "
        f"{position(lines[n + 1])} (line {n + 1})"])

    inserted = list(lines)  # a copy of a charge with another request id, given the same position as its original
    record = json.loads(lines[n])
    record["request_id"] = "forged"
    inserted.insert(n + 1, json.dumps(record))
    assert audit_of(inserted) == (EXIT_FOUND, [
        f"line {n + 2} (position {position(lines[n])}): out of order: it comes after position {position(lines[n])} "
        f"(line {n + 1})"])

    appended = [*lines, json.dumps({**json.loads(lines[n]), "id": position(lines[-1]) + 1})]
    assert audit_of(appended) == (EXIT_FOUND, [f"line {len(lines) + 1} (position {position(lines[-1]) + 1}): "
                                               "hash does not match its contents"])


def test_malformed_input_is_named_by_line_never_a_traceback(tmp_path: Path) -> None:
    good = json.dumps({"id": 1, "timestamp": "t", "topic": "x", "hash": "00" * 32})
    for bad, said in ((["{not json"], "line 1: not a JSON object"), ([good, "[1, 2]"], "line 2: not a JSON object"),
                      ([json.dumps({"topic": "x"})], 'line 1: no "id" (position)'),
                      ([json.dumps({"id": 3, "hash": "zz"})], 'line 1 (position 3): "hash" is not 64 hex digits')):
        code, out = audit_of(bad)
        assert code == EXIT_FOUND and any(problem.startswith(said) for problem in out), out
    missing = offline("ledger", "audit", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == EXIT_USAGE and "cannot read" in one_line(missing)
    usage = offline("ledger", "audit", "--head", "12", "-")
    assert usage.returncode == EXIT_USAGE and "POSITION:HASH" in one_line(usage)
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe\x00garbage\n")
    result = offline("ledger", "audit", str(binary))
    assert result.returncode == EXIT_FOUND and result.stdout.startswith("line 1: not a JSON object")
