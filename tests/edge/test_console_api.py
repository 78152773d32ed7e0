"""What the account API gained for the console, over HTTP on SQLite and PostgreSQL:
the model catalogue, the admin's user search, and the last 24 hours by hour."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

from openai import OpenAI

from tests.gateway import Gateway


def test_the_catalogue_for_signed_in_users(gateway: Gateway, unique: str) -> None:
    token, _ = gateway.register(unique)
    with gateway.client() as http:
        assert http.get("/api/models").status_code == 401
    with gateway.client(token) as http:
        models = http.get("/api/models").json()
    by_id = {m["id"]: m for m in models}
    assert [m["id"] for m in models] == sorted(by_id)
    assert by_id["gpt-test"] == {"id": "gpt-test", "input": "100", "output": "300", "cacheRead": "10",
                                 "cacheWrite": "125", "maxOutputTokens": None}
    assert by_id["gpt-fallback"]["input"] == "100"  # the first route's price


def test_admins_search_users_by_username_name_or_email(gateway: Gateway, unique: str) -> None:
    token, alice = gateway.register(unique + "alice", email=f"{unique}@example.org")
    _, bob = gateway.register(unique + "bob")
    with gateway.client(token) as http:
        http.patch("/api/user/self", json={"name": "Alice Zed"})
        assert http.get("/api/admin/users", params={"q": unique}).status_code == 403
    with gateway.client(gateway.admin) as http:
        both = http.get("/api/admin/users", params={"q": unique.upper()}).json()
        assert both["total"] == 2 and {u["id"] for u in both["items"]} == {alice["id"], bob["id"]}
        assert [u["id"] for u in http.get("/api/admin/users", params={"q": f"{unique}@EXAMPLE"}).json()["items"]] == [alice["id"]]
        named = http.get("/api/admin/users", params={"q": "alice zed"}).json()
        assert alice["id"] in {u["id"] for u in named["items"]}
        second = http.get("/api/admin/users", params={"q": unique, "pageSize": 1, "page": 2}).json()
        assert second["total"] == 2 and len(second["items"]) == 1 and second["items"][0]["id"] == bob["id"]
        assert http.get("/api/admin/users", params={"q": "%"}).json()["total"] == 0  # no wildcards
        assert http.get("/api/admin/users", params={"q": "' OR 1=1 --"}).json()["total"] == 0
        assert http.get("/api/admin/users", params={"q": "x" * 65}).status_code == 400
        assert http.get("/api/admin/users", params={"q": "a\x00b"}).status_code == 400
        everyone = http.get("/api/admin/users", params={"q": "   "}).json()  # blank: no filter
        assert everyone["total"] >= 3


def test_the_last_24_hours_by_hour_from_the_read_model(gateway: Gateway, unique: str) -> None:
    token, key, _ = gateway.funded(unique, "100")
    client = OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)
    for _ in range(2):
        client.chat.completions.create(model="gpt-test", max_tokens=20, messages=[{"role": "user", "content": "hi"}])
    used = gateway.settled(token, 2)["usedQuota"]
    hour = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:00:00Z")
    with gateway.client(token) as http:
        day = http.get("/api/usage/stats", params={"period": "24h"}).json()
        week = http.get("/api/usage/stats", params={"period": "7d"}).json()
    assert day["totalRequests"] == 2 and day["totalCost"] == used
    hours = day["hourlyBreakdown"]
    # The calls were made a moment ago: in this hour, or the previous one at an hour's turn.
    assert len(hours) == 1 and hours[0]["hour"] <= hour and hours[0]["requestCount"] == 2
    assert Decimal(hours[0]["cost"]) == Decimal(used)
    assert day["dailyBreakdown"][0]["date"] == hours[0]["hour"][:10]
    assert "hourlyBreakdown" not in week and week["totalCost"] == used
