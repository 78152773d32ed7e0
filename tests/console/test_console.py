"""The web console, driven in chromium the way people use it: by the names on its
labels, buttons and links (the issue's accessible names are the contract)."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from decimal import Decimal
from pathlib import Path

import jwt
import openai
import pytest
from playwright.sync_api import Page, expect

from tests.console.conftest import DESKTOP, PHONE, Console
from tests.edge.billing import openai_cost
from tests.gateway import JWT_SECRET, Gateway, backdate_logs, wait_until

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


# -- the journey ----------------------------------------------------------------------


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


def test_a_user_never_sees_the_admin_page_and_the_admin_api_refuses_them(console: Console, gateway: Gateway, unique: str) -> None:
    token, user = gateway.register(unique)
    page = console.page(session=token)
    page.goto("/")
    expect(page.get_by_role("link", name="Profile")).to_be_visible()
    expect(page.get_by_role("link", name="Admin")).to_have_count(0)
    page.goto("/#/admin")
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    expect(page.get_by_role("heading", name="Admin")).to_have_count(0)
    assert not [url for url in console.requests if "/api/admin" in url]
    with gateway.client(token) as http:
        assert http.get("/api/admin/users").status_code == 403
        assert http.get("/api/admin/users", params={"q": unique}).status_code == 403
        assert http.post(f"/api/admin/users/{user['id']}/grants", json={"amount": "100", "reason": "me"}).status_code == 403
        assert http.patch(f"/api/admin/users/{user['id']}", json={"role": "admin"}).status_code == 403
    assert gateway.me(token)["quota"] == "0" and gateway.me(token)["role"] == "user"


# -- sessions and safety --------------------------------------------------------------


def test_an_expired_session_goes_back_to_sign_in_with_a_message(console: Console, gateway: Gateway, unique: str) -> None:
    _, user = gateway.register(unique)
    now = int(time.time())
    expired = jwt.encode({"sub": user["id"], "iat": now - 700, "exp": now - 60, "iss": "tokensea"}, JWT_SECRET, algorithm="HS256")
    console.allow(r"status of 401")  # the server's refusal, logged by the browser
    page = console.page(session=expired)
    page.goto("/#/keys")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_text("Your session has expired. Sign in again to continue.")).to_be_visible()
    assert page.evaluate("localStorage.getItem('tokensea.session')") is None
    page.get_by_label("Username").fill(unique)
    page.get_by_label("Password").fill("wrong-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")
    page.get_by_label("Password").fill("tide-pool-42")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    token = page.evaluate("JSON.parse(localStorage.getItem('tokensea.session')).token")
    assert all(token not in url for url in console.requests)  # never in a URL
    assert page.context.cookies() == []  # nor in a cookie


def test_data_is_shown_as_text_never_run_as_markup(console: Console, gateway: Gateway, unique: str) -> None:
    """Key names are the user's; model ids are the configuration's. Neither runs, and
    a CSV of them does not run as a spreadsheet formula either."""
    hostile_key = '"><img src=x onerror=window.__xss=2>'
    formula = "=HYPERLINK(\"http://evil.example\",\"x\")"
    hostile_model = "<img src=x onerror=window.__xss=1>"
    token, key = funded(gateway, unique, "100", hostile_key)
    spreadsheet_key, _ = gateway.key(token, name=formula)
    sdk(gateway, key).chat.completions.create(model=hostile_model, max_tokens=20, messages=[{"role": "user", "content": "hi"}])
    call(gateway, spreadsheet_key)
    gateway.settled(token, 2)
    page = console.page(session=token)
    for route, shown in (("#/keys", hostile_key), ("#/logs", hostile_model), ("#/dashboard", hostile_model),
                         ("#/quickstart", hostile_model)):
        page.goto(f"/{route}")
        loaded(page)
        expect(page.get_by_text(shown).first).to_be_attached()
        assert page.evaluate("window.__xss") is None
        assert page.locator("img[src='x']").count() == 0
    page.goto("/#/logs")
    loaded(page)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download CSV").click()
    text = Path(download.value.path()).read_text()
    assert text.splitlines()[0].startswith("time,request_id,key,")
    assert '"""><img src=x onerror=window.__xss=2>"' in text and hostile_model in text
    assert '"\'=HYPERLINK(""http://evil.example"",""x"")"' in text  # an apostrophe: text, not a formula
    page.goto("/#/keys")
    loaded(page)
    expect(page.get_by_text(formula)).to_be_visible()
    page.goto("/")
    # The policy itself: a script injected inline is refused by the browser.
    console.allow(r"Content Security Policy")
    page.evaluate("() => { const s = document.createElement('script'); s.textContent = 'window.__inline = 1'; document.body.append(s); }")
    assert page.evaluate("window.__inline") is None


def test_the_policy_headers_reach_the_browser(console: Console, gateway: Gateway) -> None:
    page = console.page()
    answer = page.goto("/")
    assert answer is not None
    headers = answer.headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff" and headers["referrer-policy"] == "no-referrer"
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    docs = page.goto("/docs")
    assert docs is not None and "frame-ancestors 'none'" in docs.headers["content-security-policy"]
    expect(page.get_by_text("/api/auth/register").first).to_be_visible()  # Swagger UI rendered, from this server


def test_money_is_formatted_exactly_from_decimal_cents(console: Console) -> None:
    page = console.page()
    page.goto("/")
    results = page.evaluate(
        """async () => {
          const m = await import('/console/money.js');
          return {
            dollars: ['0.0315', '2345', '5', '100', '0', '123456789', '0.5', '-250', '100000000000000.000000000001']
              .map(m.dollars),
            subtract: m.subtract('100000000000000.1', '0.000000000000000001'),
            add: m.add('0.1', '0.2'),
            cents: ['5', '0.50', '$1.25', '.5', '0.005', '1,000', '-1', '', '1e3'].map(m.centsFromDollars),
            back: ['500', '0.0315', '10000'].map(m.dollarsForInput),
            share: [m.share('1', '3', 120), m.share('0.000001', '1000000', 120), m.share('5', '5', 120)],
          };
        }"""
    )
    assert results["dollars"] == ["$0.000315", "$23.45", "$0.05", "$1.00", "$0.00", "$1,234,567.89", "$0.005",
                                  "-$2.50", "$1,000,000,000,000.00000000000001"]
    assert results["subtract"] == "100000000000000.099999999999999999"  # a float would say 100000000000000.1
    assert results["add"] == "0.3"
    assert results["cents"] == ["500", "50", "125", "50", "0.5", None, None, None, None]
    assert results["back"] == ["5", "0.000315", "100"]
    assert results["share"] == [40, 0, 120]


# -- keyboard, phones, the first load -------------------------------------------------


def test_keyboard_only(console: Console, gateway: Gateway, unique: str) -> None:
    gateway.register(unique)
    page = console.page()
    page.goto("/")
    expect(page.get_by_label("Username")).to_be_focused()
    page.keyboard.type(unique)
    page.keyboard.press("Tab")
    page.keyboard.type("tide-pool-42")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()

    def tab_to(name: str) -> None:
        for _ in range(40):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.textContent.trim()") == name:
                return
        raise AssertionError(f"Tab never reached {name!r}")

    tab_to("API keys")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="API keys")).to_be_focused()
    tab_to("Create key")
    page.keyboard.press("Enter")
    expect(page.get_by_label("Name")).to_be_focused()
    page.keyboard.type("typed")
    page.keyboard.press("Enter")
    expect(page.get_by_text("you will not see it again")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_have_count(0)
    expect(page.get_by_role("row").filter(has_text="typed")).to_be_visible()
    expect(page.get_by_role("button", name="Create key")).to_be_focused()  # focus comes back


def test_the_first_page_loads_in_one_round_of_requests(console: Console, gateway: Gateway, unique: str) -> None:
    token, _ = gateway.register(unique)
    page = console.page(session=token)
    sent: dict[str, int] = {}  # bytes on the wire (gzip where it pays)
    page.on("response", lambda r: sent.__setitem__(r.url, int(r.headers.get("content-length", "0"))))
    page.goto("/")
    loaded(page)
    expect(page.locator(".stat")).to_have_count(3)
    listed = set(re.findall(r'href="(/console/[^"]+)"', page.evaluate("document.documentElement.outerHTML")))
    assets = {url.removeprefix(gateway.url) for url in console.requests if "/console/" in url}
    assert assets == listed | {"/console/icon.svg"}, "a file was found late, after another had arrived"
    api = [url.removeprefix(gateway.url) for url in console.requests if "/api/" in url]
    assert sorted(api) == ["/api/usage/stats?period=7d", "/api/user/self"]  # one round, both read models
    static = Path(__file__).resolve().parents[2] / "edge" / "static" / "console"
    total = sum((static / url.rsplit("/", 1)[-1]).stat().st_size for url in assets) + (static / "index.html").stat().st_size
    wire = sum(size for url, size in sent.items() if "/api/" not in url)
    print(f"\nfirst load: 1 page + {len(assets)} files, {total:,} bytes ({wire:,} sent, compressed) + {len(api)} API calls")
    assert total < 150_000  # no framework: the whole console weighs less than most frameworks alone


PAGES = [("dashboard", "Dashboard"), ("keys", "API keys"), ("logs", "Usage logs"), ("quickstart", "Quick start"),
         ("profile", "Profile"), ("admin", "Admin")]


@pytest.mark.parametrize(("size", "viewport"), [("desktop", DESKTOP), ("phone", PHONE)])
def test_every_page_at_phone_and_desktop_widths(console: Console, gateway: Gateway, size: str, viewport: dict) -> None:
    """Screenshots of every page (tests/artifacts/console), each readable without
    scrolling sideways. The README's come from the desktop run (TOKENSEA_README_SCREENSHOTS=1)."""
    username = f"ada{size}"
    token, user = gateway.register(username)
    gateway.grant(user["id"], "500")
    wait_until(lambda: gateway.me(token)["quota"] == "500")
    key, _ = gateway.key(token, name="laptop")
    gateway.entitle(user["id"], 1)  # a key binds only to a plan its owner holds
    gateway.key(token, name="ci", quota="250", planId=1, models=["gpt-test"], expiresAt="2099-12-31")
    for words in (12, 40, 7):
        call(gateway, key, words)
    sdk(gateway, key).chat.completions.create(model="claude-test", max_tokens=50, messages=[{"role": "user", "content": "hi"}])
    gateway.settled(token, 4)
    public = console.page(viewport)
    public.goto("/")
    expect(public.get_by_role("heading", name="Sign in")).to_be_visible()
    console.shot(public, f"{size}-signin")
    public.goto("/?invite=ABCD2345")
    expect(public.get_by_label("Invite code")).to_have_value("ABCD2345")
    console.shot(public, f"{size}-register")

    with gateway.client(gateway.admin) as http:
        http.patch(f"/api/admin/users/{login(gateway, username)[1]['id']}", json={"role": "admin"})
    page = console.page(viewport, session=token)
    for route, title in PAGES:
        page.goto(f"/#/{route}")
        expect(page.get_by_role("heading", name=title, exact=True)).to_be_visible()
        loaded(page)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{route} scrolls sideways by {overflow}px at {viewport['width']}px"
        shot = console.shot(page, f"{size}-{route}")
        if size == "desktop" and route in ("dashboard", "keys", "logs") and _readme_screenshots():
            DOCS.mkdir(exist_ok=True)
            shutil.copy(shot, DOCS / f"console-{route}.png")


def _readme_screenshots() -> bool:
    return os.environ.get("TOKENSEA_README_SCREENSHOTS") == "1"
