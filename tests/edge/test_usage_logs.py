"""``GET /api/usage/logs`` by keyset, over HTTP on SQLite and PostgreSQL: a walk by
``nextCursor`` sees each row that was there when it started exactly once, in order,
while charges keep arriving; filters hold along the way; a cursor is only a place in
the order (never a way into anyone else's rows); anything but a cursor the server gave
is a 400; the old ``page``/``pageSize`` still answer, up to their cap."""

from __future__ import annotations

import base64
import itertools
import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from openai import OpenAI

from edge import cursors
from edge.routes.usage import MAX_OFFSET_ROWS
from edge.security import Sessions
from tests.gateway import JWT_SECRET, Gateway, backdate_logs, wait_until


def _chat(gateway: Gateway, key: str, model: str = "gpt-test", text: str = "hi") -> None:
    client = OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0, timeout=30)
    client.chat.completions.create(model=model, max_tokens=20, messages=[{"role": "user", "content": text}])


def _visible(http: httpx.Client, rows: int) -> None:
    """Wait until the request log shows ``rows`` rows (the projection runs apart)."""
    wait_until(lambda: http.get("/api/usage/logs", params={"pageSize": 1}).json()["total"] >= rows, timeout=30)


def _everything(http: httpx.Client, **filters: Any) -> list[dict[str, Any]]:
    answer = http.get("/api/usage/logs", params={**filters, "pageSize": 100})
    assert answer.status_code == 200, answer.text
    assert answer.json()["nextCursor"] is None  # the tests' users have fewer than 100 rows
    return list(answer.json()["items"])


def _walk(http: httpx.Client, size: int, between: Any = None, **filters: Any) -> list[dict[str, Any]]:
    """Every page from the first by ``nextCursor``; ``between(n)`` runs after page n."""
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {**filters, "pageSize": size}
    for number in range(1, 1000):
        answer = http.get("/api/usage/logs", params=params)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        assert len(page["items"]) <= size
        items += page["items"]
        if page["nextCursor"] is None:
            return items
        assert len(page["items"]) == size  # only the last page is short
        assert "total" not in page or number == 1  # counted on the first (offset) page only
        params = {**filters, "pageSize": size, "cursor": page["nextCursor"]}
        if between is not None:
            between(number)
    raise AssertionError("the walk never ended")


def _order(item: dict[str, Any]) -> tuple[datetime, int]:
    return datetime.fromisoformat(item["createdAt"]), item["id"]


def _strictly_newest_first(items: list[dict[str, Any]]) -> bool:
    return all(_order(a) > _order(b) for a, b in itertools.pairwise(items))


def _ids(items: list[dict[str, Any]]) -> list[str]:
    return [item["requestId"] for item in items]


def _forged(body: str) -> str:
    """A cursor with any body, signed as the server signs (the tests know its secret):
    the checks behind the signature get their turn."""
    raw = body.encode()
    tag = Sessions(JWT_SECRET, 7).tag(cursors.PURPOSE, raw)[: cursors.TAG_BYTES]
    return base64.urlsafe_b64encode(raw + tag).rstrip(b"=").decode()


def test_a_walk_by_cursor_sees_every_row_once_in_order_while_charges_arrive(gateway: Gateway, unique: str) -> None:
    token, key, _ = gateway.funded(unique, "1000")
    late_key, late = gateway.key(token, name="late")
    # A slow call admitted first: its row is dated when it started, behind every row
    # below, and lands only once the walk is under way.
    slow = threading.Thread(target=_chat, args=(gateway, late_key, "gpt-test", f"{unique} !slow=8"))
    slow.start()
    wait_until(lambda: any(unique in str(r.body) for r in gateway.fake.records))  # admitted, so dated
    for n in range(11):
        _chat(gateway, key, text=f"call {n}")
    with gateway.client(token) as http:
        _visible(http, 11)
        before = _everything(http)
        assert len(before) == 11 and _strictly_newest_first(before)
        arrived = [11]

        def more_traffic(page: int) -> None:
            _chat(gateway, key, text=f"during page {page}")  # newer than the walk's place
            arrived[0] += 1
            if page == 2:
                slow.join()
                arrived[0] += 1
            _visible(http, arrived[0])

        walked = _walk(http, 3, between=more_traffic)
        assert arrived[0] == 15  # 12 rows, 4 pages: a new row after each of the first 3, and the slow one
        after = _everything(http)
    assert _strictly_newest_first(walked)
    assert len(set(_ids(walked))) == len(walked)  # nothing twice
    newer = [i for i in walked if i["requestId"] not in _ids(before)]
    # Every row that was there, in its order; of the rows that arrived, only the slow one,
    # dated behind the walk's place (the others are ahead of the place it had reached).
    assert [i for i in walked if i["requestId"] in _ids(before)] == before
    assert [i["tokenId"] for i in newer] == [late["id"]] and walked[-1] == newer[0]
    assert len(after) == arrived[0]

    # The same walk by page number repeats rows as the new ones push the old down.
    with gateway.client(token) as http:
        first = http.get("/api/usage/logs", params={"page": 1, "pageSize": 3}).json()["items"]
        _chat(gateway, key, text="one more")
        _visible(http, arrived[0] + 1)
        second = http.get("/api/usage/logs", params={"page": 2, "pageSize": 3}).json()["items"]
    assert second[0] == first[-1]


def test_filters_hold_along_a_walk_by_cursor(gateway: Gateway, unique: str) -> None:
    token, key, _ = gateway.funded(unique, "1000")
    other_key, other = gateway.key(token, name="other")
    for n in range(5):
        _chat(gateway, key, "gpt-test", f"a{n}")
        _chat(gateway, other_key, "claude-test", f"b{n}")
        _chat(gateway, other_key, "gpt-test", f"c{n}")
    with gateway.client(token) as http:
        _visible(http, 15)
        everything = _everything(http)
        assert _walk(http, 4) == everything
        by_model = _walk(http, 2, model="claude-test")
        assert by_model == [i for i in everything if i["model"] == "claude-test"] and len(by_model) == 5
        both = _walk(http, 2, model="gpt-test", tokenId=other["id"])
        assert both == [i for i in everything if i["model"] == "gpt-test" and i["tokenId"] == other["id"]]
        assert len(both) == 5
        middle = everything[7]["createdAt"]  # from is inclusive, to exclusive
        since = _walk(http, 2, **{"from": middle})
        assert since == [i for i in everything if i["createdAt"] >= middle] and everything[7] in since
        until = _walk(http, 2, to=middle, tokenId=other["id"])
        assert until == [i for i in everything if i["createdAt"] < middle and i["tokenId"] == other["id"]]
        assert until and until != everything
        # A cursor carries no filters: they come with each request, and may change.
        cursor = http.get("/api/usage/logs", params={"pageSize": 3}).json()["nextCursor"]
        narrowed = http.get("/api/usage/logs", params={"pageSize": 100, "cursor": cursor, "model": "claude-test"}).json()
        assert narrowed["items"] == [i for i in everything[3:] if i["model"] == "claude-test"]


def test_another_users_cursor_shows_only_your_own_rows(gateway: Gateway, unique: str) -> None:
    alice_token, alice_key, _ = gateway.funded(unique + "a", "1000")
    bob_token, bob_key, _ = gateway.funded(unique + "b", "1000")
    for n in range(4):
        _chat(gateway, alice_key, text=f"alice {n}")
        _chat(gateway, bob_key, text=f"bob {n}")
    with gateway.client(alice_token) as alice, gateway.client(bob_token) as bob:
        _visible(alice, 4)
        _visible(bob, 4)
        alices, bobs = _everything(alice), _everything(bob)
        first = bob.get("/api/usage/logs", params={"pageSize": 1}).json()
        assert first["items"] == bobs[:1]
        with_bobs = alice.get("/api/usage/logs", params={"pageSize": 100, "cursor": first["nextCursor"]}).json()
        at = _order(bobs[0])
        assert with_bobs["items"] == [i for i in alices if _order(i) < at] and with_bobs["items"]
        assert not set(_ids(with_bobs["items"])) & set(_ids(bobs))
        # Even a cursor at the end of time shows alice her own rows, all of them, and no more.
        end = _forged(f"1.{(datetime(9999, 12, 31, 23, 59, tzinfo=timezone.utc) - cursors.EPOCH) // timedelta(microseconds=1)}.1")
        assert alice.get("/api/usage/logs", params={"pageSize": 100, "cursor": end}).json()["items"] == alices


def test_anything_but_a_cursor_the_server_gave_is_a_400_naming_it(gateway: Gateway, unique: str) -> None:
    token, key, _ = gateway.funded(unique, "1000")
    for n in range(3):
        _chat(gateway, key, text=f"call {n}")
    with gateway.client(token) as http:
        _visible(http, 3)
        real = http.get("/api/usage/logs", params={"pageSize": 1}).json()["nextCursor"]
        assert http.get("/api/usage/logs", params={"cursor": real}).status_code == 200
        flipped = real[:5] + ("A" if real[5] != "A" else "B") + real[6:]
        unsigned = base64.urlsafe_b64encode(b"1.1700000000000000.5" + bytes(12)).rstrip(b"=").decode()
        too_far = (datetime(9999, 12, 31, tzinfo=timezone.utc) - cursors.EPOCH) // timedelta(microseconds=1) + 10**15
        bad = [
            "!!!", "a", "abc", real + "A", real[:-2], real[:-1] + "=", flipped, unsigned, "é" * 8, " " + real,
            base64.urlsafe_b64encode(b"not a cursor at all").decode(), "9" * 5000, "A" * 129,
            _forged("1.abc.5"), _forged("1.1.2.3"), _forged("2.1700000000000000.5"), _forged("1.-1.-1"),
            _forged("1.1700000000000000.9223372036854775808"),  # beyond BIGINT
            _forged("1." + "9" * 20 + ".5"), _forged("1." + "9" * 19 + ".5"),  # years out of range
            _forged(f"1.{too_far}.5"), _forged("1.-9999999999999999999.5"), _forged("1. 17.5"), _forged("1.17.5\n"),
            _forged(""), _forged("1.0x10.5"), _forged("1.1_000.5"), _forged("1.١٢٣.5"),
        ]
        for cursor in bad:
            answer = http.get("/api/usage/logs", params={"cursor": cursor})
            assert answer.status_code == 400, (cursor, answer.text)
            error = answer.json()["error"]
            assert error["type"] == "invalid_request" and error["message"].startswith("cursor "), error
        # The ends of what a timestamp holds are places like any other.
        last = _forged(f"1.{(datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc) - cursors.EPOCH) // timedelta(microseconds=1)}.9223372036854775807")
        first = _forged(f"1.{(datetime(1, 1, 1, tzinfo=timezone.utc) - cursors.EPOCH) // timedelta(microseconds=1)}.0")
        assert len(http.get("/api/usage/logs", params={"cursor": last}).json()["items"]) == 3
        assert http.get("/api/usage/logs", params={"cursor": first}).json() == {"items": [], "pageSize": 20, "nextCursor": None}
        both = http.get("/api/usage/logs", params={"cursor": real, "page": 2})
        assert both.status_code == 400 and "cursor" in both.json()["error"]["message"]
        assert http.get("/api/usage/logs", params={"cursor": "a\x00b"}).status_code == 400


def test_page_and_page_size_still_answer_up_to_their_cap(gateway: Gateway, unique: str) -> None:
    token, key, user = gateway.funded(unique, "1000")
    for n in range(5):
        _chat(gateway, key, text=f"call {n}")
    with gateway.client(token) as http:
        _visible(http, 5)
        everything = _everything(http)
        second = http.get("/api/usage/logs", params={"page": 2, "pageSize": 2}).json()
        assert second["items"] == everything[2:4]
        assert {k: v for k, v in second.items() if k not in ("items", "nextCursor")} == {
            "total": 5, "totalIsExact": True, "page": 2, "pageSize": 2}
        # A page's nextCursor goes on from it.
        rest = http.get("/api/usage/logs", params={"cursor": second["nextCursor"], "pageSize": 2}).json()
        assert rest["items"] == everything[4:] and rest["nextCursor"] is None
        assert http.get("/api/usage/logs", params={"page": 3, "pageSize": 2}).json()["nextCursor"] is None
        assert http.get("/api/usage/logs", params={"page": 4, "pageSize": 2}).json()["items"] == []

    backdate_logs(gateway, user["id"], _key_id(gateway, token), MAX_OFFSET_ROWS + 45)
    with gateway.client(token) as http:
        first = http.get("/api/usage/logs", params={"pageSize": 100}).json()
        assert first["total"] == MAX_OFFSET_ROWS and first["totalIsExact"] is False and first["items"][:5] == everything
        deepest = http.get("/api/usage/logs", params={"page": MAX_OFFSET_ROWS // 50, "pageSize": 50})
        assert deepest.status_code == 200 and len(deepest.json()["items"]) == 50
        for params in ({"page": MAX_OFFSET_ROWS // 50 + 1, "pageSize": 50}, {"page": MAX_OFFSET_ROWS + 1, "pageSize": 1},
                       {"page": 101, "pageSize": 100}):
            refused = http.get("/api/usage/logs", params=params)
            assert refused.status_code == 400, params
            assert "cursor" in refused.json()["error"]["message"] and refused.json()["error"]["type"] == "invalid_request"
        # Beyond the cap, the cursor goes on: the 50 rows past it, the oldest last.
        beyond = http.get("/api/usage/logs", params={"cursor": deepest.json()["nextCursor"], "pageSize": 100}).json()
        assert len(beyond["items"]) == 50 and beyond["nextCursor"] is None
        assert beyond["items"][-1]["requestId"].startswith("bulk-") and _strictly_newest_first(beyond["items"])
        assert "total" not in beyond and "page" not in beyond


def _key_id(gateway: Gateway, token: str) -> str:
    with gateway.client(token) as http:
        return str(http.get("/api/tokens").json()["items"][0]["id"])


@pytest.mark.parametrize("size", ["0", "101", "x"])
def test_page_size_bounds_hold_on_the_cursor_path(gateway: Gateway, unique: str, size: str) -> None:
    token, _ = gateway.register(unique)
    with gateway.client(token) as http:
        cursor = _forged("1.1700000000000000.5")
        assert http.get("/api/usage/logs", params={"cursor": cursor, "pageSize": size}).status_code == 400
