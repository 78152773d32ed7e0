"""The console's qualities, in chromium: who sees what, expired sessions, data never run
as markup, the policy headers, exact money, the keyboard alone, one round of requests,
phone and desktop widths."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import jwt
import pytest
from playwright.sync_api import expect

from tests.console.conftest import DESKTOP, PHONE, Console
from tests.console.helpers import DOCS, call, funded, loaded, login, readme_screenshots, sdk
from tests.gateway import JWT_SECRET, Gateway, wait_until


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
        if size == "desktop" and route in ("dashboard", "keys", "logs") and readme_screenshots():
            DOCS.mkdir(exist_ok=True)
            shutil.copy(shot, DOCS / f"console-{route}.png")
