"""A farm of throwaway registrations pays its inviter nothing until each invitee is
charged, and never more than the daily cap (the test config's default of 10), with 2
workers on both databases."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import httpx

from tests.gateway import Gateway, wait_until


def test_a_registration_farm_pays_only_for_charged_invitees_up_to_the_cap(gateway: Gateway, unique: str) -> None:
    inviter_token, inviter = gateway.register(unique)
    before = Decimal(gateway.me(inviter_token)["quota"])
    names = [f"f{uuid.uuid4().hex[:12]}" for _ in range(30)]
    with ThreadPoolExecutor(10) as pool:
        farm = list(pool.map(lambda name: gateway.register(name, inviteCode=inviter["inviteCode"]), names))
    assert all(Decimal(user["quota"]) == 100 for _, user in farm)  # each invitee's own reward, at once
    assert Decimal(gateway.me(inviter_token)["quota"]) == before  # the inviter's: nothing yet

    def charged(entry: tuple[str, dict[str, str]]) -> int:
        key, _ = gateway.key(entry[0])
        body = {"model": "gpt-test", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
        return httpx.post(f"{gateway.url}/v1/chat/completions", json=body, timeout=30,
                          headers={"authorization": f"Bearer {key}"}).status_code

    with ThreadPoolExecutor(6) as pool:
        assert set(pool.map(charged, farm[:14])) == {200}
    wait_until(lambda: Decimal(gateway.me(inviter_token)["quota"]) >= before + 1000, timeout=30)
    # One more charged invitee, seen by the projections after the batch that paid the rest:
    # by then every reward those 14 could earn has been paid.
    assert charged(farm[14]) == 200
    gateway.settled(farm[14][0], 1)
    assert Decimal(gateway.me(inviter_token)["quota"]) == before + 1000  # 10 a day; the 15 never charged paid nothing
