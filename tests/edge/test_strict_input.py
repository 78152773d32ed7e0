"""Amounts are plain ASCII decimals everywhere a person or program sends one, and an
idempotency key names one grant: each case below was a 500, a silent misreading or a
misleading answer before (issue #20), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from edge.settings import SettingsError, load
from tests.gateway import Gateway, wait_until

# Each was accepted (or answered 500) before; the first made every later call with the
# key raise decimal.Inexact inside admission, failing other users' calls in its batch.
BAD_AMOUNTS = [
    "99999999999.99999999999999999999999999999999999999999999999999",
    "1e999999999",
    "1e-400",
    "1_000",
    "\u0661\u0660",  # Arabic-Indic "10"
    " 5 ",
    "+5",
    "5e0",
    "1234567890123456",
    "0.0000000000001",
]
RAW_BAD_NUMBERS = [b"1e3", b"1E-400", b"1e999999999", b"-5", b"0.0000000000001"]  # JSON numbers, not strings


def _json(raw: bytes | str, field: str) -> dict:
    """A body whose ``field`` is ``raw``: a JSON string, or a JSON number given as bytes."""
    content = raw if isinstance(raw, bytes) else json.dumps(raw).encode()
    return {"content": b'{"' + field.encode() + b'": ' + content + b"}", "headers": {"content-type": "application/json"}}


@pytest.mark.parametrize("amount", BAD_AMOUNTS + RAW_BAD_NUMBERS)
def test_key_quotas_must_be_plain_decimals(gateway: Gateway, unique: str, amount: str | bytes) -> None:
    token, _ = gateway.register(unique)
    _, key = gateway.key(token, quota="10")
    with gateway.client(token) as http:
        changed = http.patch(f"/api/tokens/{key['id']}", **_json(amount, "quota"))
        assert changed.status_code == 400, changed.text
        assert changed.json()["error"]["message"].startswith("quota"), changed.text
        created = http.post("/api/tokens", **_json(amount, "quota"))
        assert created.status_code == 400, created.text
        listed = http.get("/api/tokens")
        assert listed.status_code == 200
        assert [item["quota"] for item in listed.json()["items"]] == ["10"]


def test_the_largest_plain_amounts_pass(gateway: Gateway, unique: str) -> None:
    token, _ = gateway.register(unique)
    _, key = gateway.key(token, quota="10")
    with gateway.client(token) as http:
        assert http.patch(f"/api/tokens/{key['id']}", json={"quota": "123456789.123456789012"}).status_code == 200
        assert http.patch(f"/api/tokens/{key['id']}", **_json(b"12.5", "quota")).json()["quota"] == "12.5"


@pytest.mark.parametrize("amount", BAD_AMOUNTS + RAW_BAD_NUMBERS)
def test_admin_grants_must_be_plain_decimals(gateway: Gateway, unique: str, amount: str | bytes) -> None:
    token, user = gateway.register(unique)
    with gateway.client(gateway.admin) as http:
        answer = http.post(f"/api/admin/users/{user['id']}/grants", **_json(amount, "amount"))
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["message"].startswith("amount"), answer.text
        assert http.post(f"/api/admin/users/{user['id']}/grants", json={"amount": "2.5"}).status_code == 201
    assert wait_until(lambda: gateway.me(token)["quota"] == "2.5")


def test_cli_grants_must_be_plain_decimals(gateway: Gateway, unique: str) -> None:
    gateway.register(unique)
    for amount in ("1_000", " 5 ", "+5", "1e-400", "\u0665"):
        answer = gateway.cli("admin", "grant", unique, amount)
        assert answer.returncode == 2, (amount, answer.stderr)
        assert len(answer.stderr.strip().splitlines()) == 1 and "CENTS" in answer.stderr


@pytest.mark.parametrize("line", ['signup_quota = "1_000"', 'invite_reward = " 5 "', 'signup_quota = "1e3"',
                                  'invite_reward = "+5"', "signup_quota = -5"])
def test_config_amounts_must_be_plain_decimals(tmp_path: Path, line: str) -> None:
    config = tmp_path / "tokensea.toml"
    config.write_text(line + "\n")
    with pytest.raises(SettingsError) as refused:
        load(str(config))
    assert line.split(" ")[0] in str(refused.value)


def test_a_reused_idempotency_key_answers_with_the_original_grant(gateway: Gateway, unique: str) -> None:
    token, user = gateway.register(unique)
    other_token, other = gateway.register(unique + "o")
    key = {"idempotency-key": "grant-" + uuid.uuid4().hex}
    url = f"/api/admin/users/{user['id']}/grants"
    with gateway.client(gateway.admin) as http:
        first = http.post(url, json={"amount": "7", "reason": "welcome"}, headers=key)
        assert first.status_code == 201, first.text
        again = http.post(url, json={"amount": "7", "reason": "welcome"}, headers=key)
        assert again.status_code == 200 and again.json()["recorded"] is False
        assert again.headers["idempotent-replayed"] == "true"
        assert {k: v for k, v in again.json().items() if k != "recorded"} == \
            {k: v for k, v in first.json().items() if k != "recorded"}
        for changed_url, body in ((url, {"amount": "70", "reason": "welcome"}),
                                  (url, {"amount": "7", "reason": "another"}),
                                  (f"/api/admin/users/{other['id']}/grants", {"amount": "7", "reason": "welcome"})):
            conflict = http.post(changed_url, json=body, headers=key)
            assert conflict.status_code == 409, conflict.text
            assert conflict.json()["grant"]["amount"] == "7"
            assert conflict.json()["grant"]["userId"] == user["id"]
            assert conflict.json()["error"]["type"] == "idempotency_conflict"
        assert http.post(url, json={"amount": "1"}, headers={"idempotency-key": "k" * 201}).status_code == 400
    wait_until(lambda: gateway.me(token)["quota"] == "7")
    assert gateway.me(token)["quota"] == "7"
    assert gateway.me(other_token)["quota"] == "0"


def test_a_reused_cli_reference_for_another_amount_is_refused(gateway: Gateway, unique: str) -> None:
    gateway.register(unique)
    assert gateway.cli("admin", "grant", unique, "3", "--reference", "r1").returncode == 0
    assert gateway.cli("admin", "grant", unique, "3", "--reference", "r1").returncode == 0
    refused = gateway.cli("admin", "grant", unique, "30", "--reference", "r1")
    assert refused.returncode == 1 and '"amount": "3"' in refused.stderr
