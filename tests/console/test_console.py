"""The web console's journeys, driven in chromium the way people use it: by the names on its
labels, buttons and links (the issue's accessible names are the contract)."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import openai
import pytest
from playwright.sync_api import expect

from tests.console.conftest import Console
from tests.console.helpers import call, dollars, funded, loaded, login, sign_in
from tests.gateway import Gateway, backdate_logs, wait_until


def test_sign_up_create_a_key_use_it_and_see_the_exact_cost(console: Console, gateway: Gateway, unique: str) -> None:
    page = console.page()
    page.goto("/")
    page.get_by_role("link", name="Create account").click()
    page.get_by_label("Username").fill(unique)
    page.get_by_label("Password").fill("tide-pool-42")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You have signed out.")).to_be_visible()
    sign_in(page, unique)

    token, user = login(gateway, unique)
    gateway.grant(user["id"], "100")
    page.get_by_role("link", name="API keys").click()
    page.get_by_role("button", name="Create key").click()
    page.get_by_label("Name").fill("laptop")
    page.get_by_role("button", name="Create", exact=True).click()
    expect(page.get_by_text("you will not see it again")).to_be_visible()
    secret = page.get_by_label("Key “laptop”").input_value()
    assert re.fullmatch(r"tsk-[A-Za-z0-9]{32,}", secret)
    page.get_by_role("button", name="Done").click()
    row = page.get_by_role("row").filter(has_text="laptop")
    expect(row).to_contain_text(secret[:8] + "…")
    assert secret not in page.content()
    page.reload()
    expect(page.get_by_role("row").filter(has_text="laptop")).to_be_visible()
    assert secret not in page.content()  # read once, never again

    wait_until(lambda: Decimal(gateway.me(token)["quota"]) == 100)
    cost = call(gateway, secret)
    assert cost > 0
    gateway.settled(token, 1)

    page.get_by_role("link", name="Usage logs").click()
    loaded(page)
    entry = page.get_by_role("row").filter(has_text="gpt-test")
    expect(entry).to_have_count(1)
    expect(entry).to_contain_text(dollars(cost))
    expect(entry).to_contain_text("laptop")

    page.get_by_role("link", name="Dashboard").click()
    loaded(page)
    chart = page.get_by_role("img", name=re.compile("Cost and requests per day"))
    today = chart.locator("g.bucket").last
    expect(today.locator("title")).to_have_text(re.compile(re.escape(f": {dollars(cost)}, 1 request") + "$"))
    expect(page.get_by_text(f"Spent {dollars(cost)} on 1 request in the last 7 days.")).to_be_visible()
    expect(page.locator(".stat").filter(has_text="Used")).to_contain_text(dollars(cost))
    expect(page.locator(".stat").filter(has_text="Remaining")).to_contain_text(dollars(Decimal(100) - cost))
    page.get_by_role("button", name="24 hours").click()
    loaded(page)
    hourly = page.get_by_role("img", name=re.compile("Cost and requests per hour"))
    expect(hourly.locator("g.bucket title").filter(has_text=f"{dollars(cost)}, 1 request")).to_have_count(1)


def test_the_log_pages_by_cursor_and_the_csv_has_every_row_once(console: Console, gateway: Gateway, unique: str) -> None:
    """Next and Previous walk the log by the API's cursor; calls that arrive meanwhile
    push nothing twice onto the next page; the CSV is every row, each once, newest first."""
    token, _, user = gateway.funded(unique, "100")
    secret, made = gateway.key(token, name="laptop")
    backdate_logs(gateway, user["id"], made["id"], 120)
    call(gateway, secret)
    with gateway.client(token) as http:
        wait_until(lambda: http.get("/api/usage/logs", params={"pageSize": 1}).json()["total"] == 121)
        first = http.get("/api/usage/logs", params={"pageSize": 100}).json()
        rest = http.get("/api/usage/logs", params={"pageSize": 100, "cursor": first["nextCursor"]}).json()
    expected = [item["createdAt"] for item in first["items"] + rest["items"]]
    assert len(expected) == 121 and rest["nextCursor"] is None

    def shown() -> list[str]:
        loaded(page)
        return page.locator("tbody time").evaluate_all("els => els.map((e) => e.getAttribute('datetime'))")

    page = console.page(session=token)
    page.goto("/#/logs")
    pages = page.get_by_role("navigation", name="Pages")
    expect(pages).to_contain_text("Page 1 (121 requests)")
    assert shown() == expected[:50]
    expect(pages.get_by_role("button", name="Previous")).to_be_disabled()
    call(gateway, secret)  # a newer row: it must not push a row of page 1 onto page 2
    wait_until(lambda: gateway.me(token)["requestCount"] >= 2)
    pages.get_by_role("button", name="Next").click()
    expect(pages).to_contain_text("Page 2 (121 requests)")
    assert shown() == expected[50:100]
    expect(pages.get_by_role("button", name="Next")).to_be_focused()  # the keyboard stays on the pager
    page.keyboard.press("Enter")
    expect(pages).to_contain_text("Page 3")
    assert shown() == expected[100:]
    expect(pages.get_by_role("button", name="Next")).to_be_disabled()
    expect(pages.get_by_role("button", name="Previous")).to_be_focused()
    page.keyboard.press("Enter")
    expect(pages).to_contain_text("Page 2")
    assert shown() == expected[50:100]
    pages.get_by_role("button", name="Previous").click()
    expect(pages).to_contain_text("Page 1")
    newest = shown()
    assert newest[1:] == expected[:49] and newest[0] > expected[0]  # page 1 again, with the new call on top

    with page.expect_download() as download:
        page.get_by_role("button", name="Download CSV").click()
    lines = Path(download.value.path()).read_text().splitlines()
    times = [line.split(",", 1)[0] for line in lines[1:]]
    ids = [line.split(",")[1] for line in lines[1:]]
    assert times == [newest[0], *expected] and len(set(ids)) == 122
    expect(page.get_by_text("Downloaded 122 rows.")).to_be_attached()


def test_disable_and_delete_a_key_in_the_console_and_the_api_refuses_it(console: Console, gateway: Gateway, unique: str) -> None:
    token, key = funded(gateway, unique, "100", "build-bot")
    call(gateway, key)
    page = console.page(session=token)
    page.goto("/#/keys")
    row = page.get_by_role("row").filter(has_text="build-bot")
    row.get_by_role("button", name="Disable").click()
    expect(row.get_by_text("Disabled", exact=True)).to_be_visible()
    with pytest.raises(openai.PermissionDeniedError):
        call(gateway, key)

    row.get_by_role("button", name="Enable").click()
    expect(row.get_by_text("Active", exact=True)).to_be_visible()
    call(gateway, key)

    row.get_by_role("button", name="Edit quota").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Quota").fill("1.5")
    dialog.get_by_role("button", name="Save").click()
    expect(row).to_contain_text("of $1.50")

    row.get_by_role("button", name="Delete").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("cannot be undone")
    dialog.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("row").filter(has_text="build-bot")).to_have_count(0)
    with pytest.raises((openai.PermissionDeniedError, openai.AuthenticationError)):
        call(gateway, key)
    with gateway.client(token) as http:
        assert "build-bot" not in [k["name"] for k in http.get("/api/tokens").json()["items"]]


def test_an_admin_grants_quota_once_and_the_user_sees_it(console: Console, gateway: Gateway, unique: str) -> None:
    token, _ = gateway.register(unique)
    gateway.admin  # noqa: B018 - creates the admin account
    admin = console.page()
    sign_in(admin, "root", "admin-password")
    admin.get_by_role("link", name="Admin").click()
    admin.get_by_label("Search", exact=True).fill(unique)
    admin.get_by_role("button", name="Search").click()
    users = admin.get_by_role("table", name=f"Users matching “{unique}”")
    expect(users.get_by_role("row")).to_have_count(2)  # the header and this user
    row = users.get_by_role("row").filter(has_text=unique)
    row.get_by_role("button", name="Grant").click()
    dialog = admin.get_by_role("dialog")
    dialog.get_by_label("Amount").fill("2.5")
    expect(dialog.get_by_text("That is 250 cents.")).to_be_visible()
    dialog.get_by_label("Reason").fill(f"welcome {unique}")
    dialog.get_by_role("button", name="Grant").dblclick()
    expect(admin.get_by_role("status")).to_have_text(f"Granted $2.50 to {unique}.")

    wait_until(lambda: gateway.me(token)["quota"] == "250")
    exported = [json.loads(line) for line in gateway.cli("ledger", "export").stdout.splitlines()]
    grants = [e for e in exported if e["topic"] == "tokensea.QuotaGranted" and f"welcome {unique}" in json.dumps(e)]
    assert len(grants) == 1, grants  # a double click grants once

    page = console.page(session=token)
    page.goto("/")
    loaded(page)
    expect(page.locator(".stat").filter(has_text="Remaining")).to_contain_text("$2.50")
    expect(page.locator(".stat").filter(has_text="Remaining")).to_contain_text("of $2.50 granted")
