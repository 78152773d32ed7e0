"""Steps the console tests share: sign in, fund a user, make a call, format dollars."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import openai
from playwright.sync_api import Page, expect

from tests.edge.billing import openai_cost
from tests.gateway import Gateway

DOCS = Path(__file__).resolve().parents[2] / "docs"


def dollars(cents: Decimal) -> str:
    """How a person reads an exact amount of cents, written independently of the
    console's money.js: every digit kept, at least two decimals."""
    whole, _, fraction = format((cents / 100).normalize(), "f").partition(".")
    return f"${int(whole):,}.{fraction.ljust(2, '0')}"


def sdk(gateway: Gateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0, timeout=30)


def login(gateway: Gateway, username: str, password: str = "tide-pool-42") -> tuple[str, dict]:
    with gateway.client() as http:
        answer = http.post("/api/auth/login", json={"username": username, "password": password})
    assert answer.status_code == 200, answer.text
    return answer.json()["token"], answer.json()["user"]


def sign_in(page: Page, username: str, password: str = "tide-pool-42") -> None:
    page.goto("/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()


def loaded(page: Page) -> None:
    """The page's data has arrived (nothing is marked busy, no "Loading…" left)."""
    expect(page.locator("[aria-busy='true']")).to_have_count(0)
    expect(page.get_by_text("Loading…")).to_have_count(0)


def funded(gateway: Gateway, username: str, cents: str, key_name: str) -> tuple[str, str]:
    """A user with quota (visible to model calls) and a key named ``key_name``: (session, key)."""
    token, _, _ = gateway.funded(username, cents)
    key, _ = gateway.key(token, name=key_name)
    return token, key


def call(gateway: Gateway, key: str, words: int = 5) -> Decimal:
    """One chat completion through the key; its exact cost at gpt-test's prices."""
    reply = sdk(gateway, key).chat.completions.create(
        model="gpt-test", max_tokens=50, messages=[{"role": "user", "content": f"hello !words={words}"}]
    )
    return openai_cost(reply.usage.model_dump(exclude_none=True))


def readme_screenshots() -> bool:
    return os.environ.get("TOKENSEA_README_SCREENSHOTS") == "1"
