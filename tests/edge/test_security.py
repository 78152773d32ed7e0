"""Secrets never leak, SQL is always parameterized, CORS is off, limits hold."""

from __future__ import annotations

import re

import httpx
import openai
import pytest

from tests.edge.test_openai_relay import sdk
from tests.gateway import ANTHROPIC_KEY, JWT_SECRET, OPENAI_KEY, Gateway


def test_no_secret_reaches_a_log_or_an_error_body(gateway: Gateway, unique: str) -> None:
    token, key, _ = gateway.funded(unique, "10")
    client = sdk(gateway, key)
    bodies = []
    for text in ("hello", "!status=401", "!status=500", "!drop"):
        try:
            client.chat.completions.create(model="gpt-test", max_tokens=5, messages=[{"role": "user", "content": text}])
        except openai.APIError as exc:
            bodies.append(str(exc))
    for bad in (key + "x", key[:-1], "tsk-" + "z" * 40):
        answer = httpx.post(f"{gateway.url}/v1/chat/completions", headers={"authorization": f"Bearer {bad}"},
                            json={"model": "gpt-test", "max_tokens": 5, "messages": []})
        bodies.append(answer.text)
    with gateway.client() as http:
        bodies.append(http.post("/api/auth/login", json={"username": unique, "password": "wrong-password"}).text)
        bodies.append(http.get("/api/user/self", headers={"authorization": f"Bearer {token}x"}).text)
    logs = gateway.logs()
    for secret in (key, key[:20], OPENAI_KEY, ANTHROPIC_KEY, JWT_SECRET, token, "tide-pool-42", "wrong-password"):
        assert secret not in logs, f"a secret reached the logs: {secret[:12]}…"
        assert all(secret not in body for body in bodies)
    assert not re.search(r"tsk-[A-Za-z0-9]{12,}", logs)


def test_injection_strings_are_only_data(gateway: Gateway, unique: str) -> None:
    token, _ = gateway.register(unique)
    evil = "x'); DROP TABLE ts_users; --"
    secret, key = gateway.key(token, name=evil)
    with gateway.client(token) as http:
        assert http.get("/api/tokens").json()["items"][0]["name"] == evil
        assert http.patch(f"/api/tokens/{key['id']}", json={"name": evil + " OR 1=1"}).status_code == 200
        assert http.get("/api/usage/logs", params={"model": "' OR '1'='1"}).json()["total"] == 0
        assert http.get("/api/usage/logs", params={"tokenId": "1 OR 1=1"}).status_code == 400
        assert http.get("/api/usage/logs", params={"from": "2026-01-01'; --"}).status_code == 400
        assert http.delete("/api/tokens/1%20OR%201=1").status_code == 404
    with gateway.client(gateway.admin) as http:
        assert http.patch("/api/admin/users/1 OR 1=1", json={"status": "disabled"}).status_code == 404
        assert http.get("/api/admin/users").status_code == 200  # the table is still there
    assert httpx.get(f"{gateway.url}/v1/models", headers={"authorization": f"Bearer {secret}"}).status_code == 200


def test_dates_at_the_edge_of_the_calendar_are_a_400(gateway: Gateway, unique: str) -> None:
    """Found by schemathesis: year 1 at +14:00 has no UTC time and raised OverflowError (500)."""
    token, _ = gateway.register(unique)
    with gateway.client(token) as http:
        for edge_date in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"):
            assert http.get("/api/usage/logs", params={"from": edge_date}).status_code == 400
            assert http.get("/api/usage/logs", params={"to": edge_date}).status_code == 400
        assert http.post("/api/tokens", json={"name": "k", "expiresAt": "9999-12-31T23:59:59-14:00"}).status_code == 400


def test_nul_characters_are_refused_clearly(gateway: Gateway, unique: str) -> None:
    """Found by schemathesis: NUL reached PostgreSQL, which refused it, and the client got a 503."""
    token, _ = gateway.register(unique)
    nul = chr(0)
    with gateway.client(token) as http:
        for answer in (
            http.patch("/api/user/self", json={"name": f"a{nul}b"}),
            http.post("/api/tokens", json={"name": f"k{nul}"}),
            http.get("/api/usage/logs", params={"model": f"gpt{nul}"}),
            http.post("/api/auth/login", json={"username": f"a{nul}", "password": "x" * 8}),
        ):
            assert answer.status_code == 400, answer.text
            assert "NUL" in answer.json()["error"]["message"]


def test_cors_answers_only_configured_origins(gateway: Gateway) -> None:
    answer = httpx.get(f"{gateway.url}/healthz", headers={"origin": "https://evil.example"})
    assert "access-control-allow-origin" not in answer.headers
    allowed = httpx.get(f"{gateway.url}/healthz", headers={"origin": "https://app.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    preflight = httpx.options(f"{gateway.url}/v1/chat/completions", headers={
        "origin": "https://app.example", "access-control-request-method": "POST"})
    assert preflight.status_code == 204
    assert "authorization" in preflight.headers["access-control-allow-headers"]


def test_cors_is_off_by_default() -> None:
    from edge.settings import load

    assert load().server.cors_origins == []


@pytest.mark.parametrize("route", ["/v1/chat/completions", "/v1/messages"])
def test_oversized_model_requests_are_refused_in_protocol_shape(gateway: Gateway, unique: str, route: str) -> None:
    _, key, _ = gateway.funded(unique, "1")
    answer = httpx.post(f"{gateway.url}{route}", content=b"{" + b" " * (33 * 1024 * 1024) + b"}",
                        headers={"authorization": f"Bearer {key}"}, timeout=60)
    assert answer.status_code == 413
    body = answer.json()
    assert body["error"]["type"] in ("invalid_request_error", "request_too_large")
