"""The account API over HTTP against the real server, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
import time
import uuid
from decimal import Decimal

import jwt
import pytest

from tests.gateway import JWT_SECRET, Gateway, wait_until


def test_register_login_and_self(gateway: Gateway, unique: str) -> None:
    token, user = gateway.register(unique, email="a@example.com")
    assert user["username"] == unique and user["role"] == "user" and user["status"] == "active"
    assert len(user["inviteCode"]) == 8 and user["quota"] == "0"
    with gateway.client() as http:
        login = http.post("/api/auth/login", json={"username": unique.upper(), "password": "tide-pool-42"})
    assert login.status_code == 200
    assert set(login.json()) == {"token", "expiresAt", "user"}
    me = gateway.me(login.json()["token"])
    assert me["id"] == user["id"] and me["email"] == "a@example.com"
    assert {"id", "username", "name", "email", "role", "status", "quota", "usedQuota", "requestCount", "inviteCode"} <= set(me)
    with gateway.client(token) as http:
        changed = http.patch("/api/user/self", json={"name": "Alice A.", "email": "b@example.com"})
        assert changed.status_code == 200 and changed.json()["name"] == "Alice A."
        assert http.put("/api/user/self", json={"name": "Alice"}).json()["name"] == "Alice"
        assert http.patch("/api/user/self", json={"email": "not-an-email"}).status_code == 400


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "ab", "password": "tide-pool-42"}, "username"),
        ({"username": "bad name!", "password": "tide-pool-42"}, "username"),
        ({"username": "x" * 33, "password": "tide-pool-42"}, "username"),
        ({"username": "validname", "password": "short"}, "password"),
        ({"username": "validname", "password": "123456"}, "password"),  # common passwords (issue #20)
        ({"username": "validname", "password": "Password1"}, "password"),
        ({"username": "validname", "password": "qwertyuiop"}, "password"),
        ({"username": "validname", "password": "VALIDNAME"}, "password"),  # the username
        ({"username": "validname", "password": "x" * 1025}, "password"),
        ({"username": 12345, "password": "tide-pool-42"}, "username"),
        ({"username": "validname"}, "password"),
        ({"username": "validname", "password": "tide-pool-42", "role": "admin"}, "role"),
    ],
)
def test_registration_rejects_bad_input(gateway: Gateway, body: dict, field: str) -> None:
    with gateway.client() as http:
        answer = http.post("/api/auth/register", json=body)
    assert answer.status_code == 400
    assert field in answer.json()["error"]["message"]
    assert answer.json()["error"]["type"] == "invalid_request"


def test_malformed_bodies_are_clear_400s(gateway: Gateway) -> None:
    with gateway.client() as http:
        for raw in (b"{broken", b"[1, 2]", b"", b"null", b'{"username": NaN}', b"\xff\xfe"):
            answer = http.post("/api/auth/register", content=raw, headers={"content-type": "application/json"})
            assert answer.status_code == 400, raw
            assert "error" in answer.json()
        huge = http.post("/api/auth/register", content=b"x" * (33 * 1024 * 1024))
        assert huge.status_code == 413


def test_duplicate_usernames_and_invites(gateway: Gateway, unique: str) -> None:
    _, inviter = gateway.register(unique)
    with gateway.client() as http:
        assert http.post("/api/auth/register", json={"username": unique.upper(), "password": "tide-pool-42"}).status_code == 409
        bad = http.post("/api/auth/register", json={"username": unique + "x", "password": "tide-pool-42", "inviteCode": "NOPE2345"})
        assert bad.status_code == 400
    token, invitee = gateway.register(unique + "i", inviteCode=inviter["inviteCode"])
    assert invitee["quota"] == "100"
    wait_until(lambda: gateway.me(token)["quota"] == "100")


def test_login_failures_are_throttled(gateway: Gateway, unique: str) -> None:
    gateway.register(unique)
    with gateway.client() as http:
        codes = [http.post("/api/auth/login", json={"username": unique, "password": "wrong-password"}).status_code
                 for _ in range(8)]
        # 3 attempts per username and address, counted in the database across both workers.
        assert codes == [401, 401, 401] + [429] * 5
        assert http.post("/api/auth/login", json={"username": "nobody" + unique, "password": "x" * 8}).status_code in (401, 429)


def _forge(claims: dict, key: str = JWT_SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


def test_sessions_refuse_expired_forged_and_unsigned_tokens(gateway: Gateway, unique: str) -> None:
    _, user = gateway.register(unique)
    now = int(time.time())
    claims = {"sub": user["id"], "iat": now, "exp": now + 600, "iss": "tokensea"}
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    bad_tokens = [
        _forge({**claims, "exp": now - 1}),
        _forge(claims, key="another-secret-of-sufficient-length-000000"),
        f"{header}.{payload}.",
        _forge(claims, algorithm="HS512"),
        _forge({k: v for k, v in claims.items() if k != "exp"}),
        "not-a-jwt",
    ]
    for token in bad_tokens:
        with gateway.client(token) as http:
            answer = http.get("/api/user/self")
        assert answer.status_code == 401, token
    with gateway.client() as http:
        assert http.get("/api/user/self").status_code == 401
    with gateway.client(_forge(claims)) as http:
        assert http.get("/api/user/self").status_code == 200


def test_api_keys_lifecycle_pagination_and_the_once_only_secret(gateway: Gateway, unique: str) -> None:
    token, user = gateway.register(unique)
    gateway.entitle(user["id"], 1)
    secret, key = gateway.key(token, name="first", quota="250.5", models=["gpt-test"], planId=1,
                              expiresAt="2099-01-01T00:00:00Z")
    assert secret.startswith("tsk-") and len(secret) >= 36
    assert key["keyPrefix"] == secret[:8] and key["quota"] == "250.5" and key["models"] == ["gpt-test"]
    assert key["planId"] == 1 and key["expiresAt"].startswith("2099-01-01") and key["status"] == "active"
    for n in range(4):
        gateway.key(token, name=f"more{n}")
    with gateway.client(token) as http:
        first = http.get("/api/tokens", params={"page": 1, "pageSize": 2}).json()
        assert first["total"] == 5 and len(first["items"]) == 2 and first["pageSize"] == 2
        last = http.get("/api/tokens", params={"page": 3, "pageSize": 2}).json()
        assert len(last["items"]) == 1
        assert http.get("/api/tokens", params={"page": 9, "pageSize": 2}).json()["items"] == []
        for bad in ({"page": 0}, {"pageSize": 101}, {"page": "x"}, {"pageSize": 0}):
            assert http.get("/api/tokens", params=bad).status_code == 400
        listed = json.dumps(http.get("/api/tokens", params={"pageSize": 100}).json())
        assert secret not in listed  # shown once, never again
        changed = http.patch(f"/api/tokens/{key['id']}", json={"name": "renamed", "status": "disabled", "quota": None})
        assert changed.status_code == 200
        assert (changed.json()["name"], changed.json()["status"], changed.json()["quota"]) == ("renamed", "disabled", None)
        assert http.put(f"/api/tokens/{key['id']}", json={"quota": 12}).json()["quota"] == "12"
        assert http.patch(f"/api/tokens/{key['id']}", json={"status": "deleted"}).status_code == 400
        assert http.patch(f"/api/tokens/{key['id']}", json={"quota": -1}).status_code == 400
        assert http.patch(f"/api/tokens/{key['id']}", json={"quota": 1.5}).status_code == 200  # exact 1.5, not a float
        assert http.get("/api/tokens").json()["items"][-1]["quota"] == "1.5"
        assert http.delete(f"/api/tokens/{key['id']}").status_code == 204
        assert http.delete(f"/api/tokens/{key['id']}").status_code == 404
        assert http.get("/api/tokens").json()["total"] == 4


@pytest.mark.parametrize(
    "body",
    [
        {"name": ""},
        {"name": "k", "quota": "-5"},
        {"name": "k", "quota": True},
        {"name": "k", "quota": "abc"},
        {"name": "k", "planId": 999},
        {"name": "k", "models": ["no-such-model"]},
        {"name": "k", "models": "gpt-test"},
        {"name": "k", "expiresAt": "2001-01-01"},
        {"name": "k", "expiresAt": "tomorrow"},
        {"name": "k", "extra": 1},
    ],
)
def test_key_creation_rejects_bad_input(gateway: Gateway, unique: str, body: dict) -> None:
    token, _ = gateway.register(unique)
    with gateway.client(token) as http:
        answer = http.post("/api/tokens", json=body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["message"]


def test_users_cannot_reach_each_others_keys(gateway: Gateway, unique: str) -> None:
    alice, _ = gateway.register(unique + "a")
    bob, _ = gateway.register(unique + "b")
    _, key = gateway.key(alice)
    with gateway.client(bob) as http:
        for method in ("patch", "put"):
            assert getattr(http, method)(f"/api/tokens/{key['id']}", json={"name": "mine"}).status_code == 404
        assert http.delete(f"/api/tokens/{key['id']}").status_code == 404
        assert http.delete(f"/api/tokens/{uuid.uuid4()}").status_code == 404
        assert http.delete("/api/tokens/not-a-uuid").status_code == 404
        assert http.get("/api/tokens").json()["total"] == 0
        assert http.get("/api/usage/logs", params={"tokenId": key["id"]}).json()["total"] == 0


def test_plans(gateway: Gateway, unique: str) -> None:
    token, user = gateway.register(unique)
    gateway.entitle(user["id"], 1)
    with gateway.client(token) as http:
        assert http.get("/api/plans").json() == [
            {"id": 1, "name": "Starter", "models": ["gpt-test", "claude-test"], "priceMultiplier": "0.5",
             "limits": {"rpm": None, "tpm": None, "maxConcurrency": None}, "default": True}
        ]


def test_admin_routes_refuse_users_and_serve_admins(gateway: Gateway, unique: str) -> None:
    token, user = gateway.register(unique)
    with gateway.client(token) as http:
        assert http.get("/api/admin/users").status_code == 403
        assert http.post(f"/api/admin/users/{user['id']}/grants", json={"amount": "5"}).status_code == 403
    with gateway.client(gateway.admin) as http:
        listed = http.get("/api/admin/users", params={"pageSize": 100})
        assert listed.status_code == 200 and listed.json()["total"] >= 2
        grant = http.post(f"/api/admin/users/{user['id']}/grants", json={"amount": 0.1, "reason": "welcome"},
                          headers={"idempotency-key": "welcome-" + unique})
        assert grant.status_code == 201
        again = http.post(f"/api/admin/users/{user['id']}/grants", json={"amount": 0.1, "reason": "welcome"},
                          headers={"idempotency-key": "welcome-" + unique})
        assert again.status_code == 200 and again.json()["recorded"] is False
        for amount in ("0", "-1", "abc", None, True):
            assert http.post(f"/api/admin/users/{user['id']}/grants", json={"amount": amount}).status_code == 400
        assert http.post(f"/api/admin/users/{uuid.uuid4()}/grants", json={"amount": "1"}).status_code == 404
        assert http.patch(f"/api/admin/users/{user['id']}", json={"role": "superuser"}).status_code == 400
        disabled = http.patch(f"/api/admin/users/{user['id']}", json={"status": "disabled"})
        assert disabled.status_code == 200 and disabled.json()["status"] == "disabled"
    with gateway.client(token) as http:
        assert http.get("/api/user/self").status_code == 403
        assert http.post("/api/auth/login", json={"username": unique, "password": "tide-pool-42"}).status_code == 403
    with gateway.client(gateway.admin) as http:
        http.patch(f"/api/admin/users/{user['id']}", json={"status": "active"})
    assert Decimal(wait_until(lambda: gateway.me(token)["quota"] == "0.1" and "0.1")) == Decimal("0.1")


def test_cli_grant_and_users(gateway: Gateway, unique: str) -> None:
    token, _ = gateway.register(unique)
    granted = gateway.cli("admin", "grant", unique, "12.75", "--reason", "support", "--reference", "ticket-1")
    assert granted.returncode == 0, granted.stderr
    again = gateway.cli("admin", "grant", unique, "12.75", "--reason", "support", "--reference", "ticket-1")
    assert json.loads(again.stdout)["recorded"] is False
    assert gateway.cli("admin", "grant", unique, "0.5e0x").returncode == 2
    assert gateway.cli("admin", "grant", "nobody" + unique, "1").returncode == 2
    wait_until(lambda: gateway.me(token)["quota"] == "12.75")
    duplicate = gateway.cli("admin", "create-user", unique, "--password-stdin", stdin="tide-pool-42\n")
    assert duplicate.returncode == 1
    for weak in ("abc", "123456", unique + "z"):
        refused = gateway.cli("admin", "create-user", unique + "z", "--password-stdin", stdin=weak + "\n")
        assert refused.returncode == 2 and refused.stderr.startswith("tokensea: password:"), refused.stderr


def test_every_response_has_a_request_id(gateway: Gateway) -> None:
    with gateway.client() as http:
        for answer in (http.get("/healthz"), http.get("/nope"), http.post("/api/auth/login", json={})):
            assert answer.headers["x-request-id"].startswith("req_")
        assert http.get("/nope").json() == {"error": {"message": "no such route", "type": "not_found"}}
