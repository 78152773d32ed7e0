"""Plans are entitlements: an admin assigns them, a key binds only to a plan its owner
holds (else 403), a key made without one gets the owner's default, and each user sees
the plans they hold. Before (issue #20), any user could bind any plan to a key, so a
0.1x plan was free for all to choose."""

from __future__ import annotations

import json

from tests.gateway import Gateway

STARTER = {"id": 1, "name": "Starter", "models": ["gpt-test", "claude-test"], "priceMultiplier": "0.5",
           "limits": {"rpm": None, "tpm": None, "maxConcurrency": None}}


def test_a_user_binds_only_plans_they_hold(gateway: Gateway, unique: str) -> None:
    token, user = gateway.register(unique)
    with gateway.client(token) as http:
        refused = http.post("/api/tokens", json={"name": "cheap", "planId": 1})
        assert refused.status_code == 403, refused.text
        assert "plan 1" in refused.json()["error"]["message"]
        assert http.get("/api/plans").json() == []
        assert http.get("/api/tokens").json()["total"] == 0
        plain = http.post("/api/tokens", json={"name": "plain"})
        assert plain.status_code == 201 and plain.json()["apiKey"]["planId"] is None
    with gateway.client(gateway.admin) as http:
        assigned = http.patch(f"/api/admin/users/{user['id']}", json={"plans": [1]})
        assert assigned.status_code == 200, assigned.text
        assert (assigned.json()["plans"], assigned.json()["defaultPlan"]) == ([1], 1)
        assert http.get("/api/plans").json() == [{**STARTER, "default": False}]  # admins see every plan
    with gateway.client(token) as http:
        assert http.get("/api/plans").json() == [{**STARTER, "default": True}]
        bound = http.post("/api/tokens", json={"name": "cheap", "planId": 1})
        assert bound.status_code == 201 and bound.json()["apiKey"]["planId"] == 1
        default = http.post("/api/tokens", json={"name": "default"})
        assert default.status_code == 201 and default.json()["apiKey"]["planId"] == 1
    with gateway.client(gateway.admin) as http:
        revoked = http.patch(f"/api/admin/users/{user['id']}", json={"plans": []})
        assert (revoked.json()["plans"], revoked.json()["defaultPlan"]) == ([], None)
    with gateway.client(token) as http:
        assert http.post("/api/tokens", json={"name": "again", "planId": 1}).status_code == 403
        assert http.post("/api/tokens", json={"name": "again"}).json()["apiKey"]["planId"] is None
        assert http.get("/api/plans").json() == []


def test_plan_assignments_are_validated(gateway: Gateway, unique: str) -> None:
    token, user = gateway.register(unique)
    url = f"/api/admin/users/{user['id']}"
    with gateway.client(token) as http:
        assert http.patch(url, json={"plans": [1]}).status_code == 403  # users cannot assign plans
    with gateway.client(gateway.admin) as http:
        for body, field in (({"plans": [99]}, "plans"), ({"plans": [1], "defaultPlan": 99}, "defaultPlan"),
                            ({"defaultPlan": 1}, "defaultPlan"), ({"plans": [True]}, "plans"),
                            ({"plans": ["1"]}, "plans"), ({"plans": 1}, "plans"), ({"plans": [1] * 101}, "plans")):
            answer = http.patch(url, json=body)
            assert answer.status_code == 400, (body, answer.text)
            assert answer.json()["error"]["message"].startswith(field), answer.text
        assert http.patch(url, json={"plans": [1, 1]}).json()["plans"] == [1]
        assert http.patch("/api/admin/users/00000000-0000-0000-0000-000000000000", json={"plans": [1]}).status_code == 404


def test_the_cli_assigns_plans(gateway: Gateway, unique: str) -> None:
    token, _ = gateway.register(unique)
    done = gateway.cli("admin", "plans", unique, "1", "--default", "1")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"username": unique, "plans": [1], "defaultPlan": 1}
    with gateway.client(token) as http:
        assert http.post("/api/tokens", json={"name": "k", "planId": 1}).status_code == 201
    for bad in (("7",), ("1", "--default", "2")):
        refused = gateway.cli("admin", "plans", unique, *bad)
        assert refused.returncode == 2, (bad, refused.stderr)
        assert len(refused.stderr.strip().splitlines()) == 1
    assert gateway.cli("admin", "plans", unique, "x").returncode == 2  # argparse's own usage error
    assert gateway.cli("admin", "plans", "nobody" + unique, "1").returncode == 2  # as for grant: bad input
    assert json.loads(gateway.cli("admin", "plans", unique).stdout)["plans"] == []
    with gateway.client(token) as http:
        assert http.post("/api/tokens", json={"name": "k", "planId": 1}).status_code == 403
