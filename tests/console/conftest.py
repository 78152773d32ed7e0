"""The console in a real browser: Playwright (from PyPI) driving Debian's chromium
against a real ``tokensea serve``.

- ``browser``: one headless chromium for the module. Playwright's own browser
  download cannot work here, so it launches the system's (``.ci/run`` installs
  Debian's ``chromium`` where it is missing); set ``TOKENSEA_CHROMIUM`` to use another.
- ``gateway``: one server for the module, on PostgreSQL only. The console is a client
  of the account API, whose behaviour on both databases the API tests cover; a
  second backend would double the slowest tests of the suite for no new coverage.
- ``console``: opens pages and, when the test ends, fails it if the browser logged an
  error or asked any origin other than the server's. A test that expects an error
  (a refused login logs its 401) says so with ``allow``.
- Screenshots go to ``tests/artifacts/console/`` (git-ignored).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.conftest import fresh_database
from tests.fakes.upstream import FakeUpstream
from tests.gateway import Gateway, start

CHROMIUM = os.environ.get("TOKENSEA_CHROMIUM", "/usr/bin/chromium")
# The flags this machine needs (see the machine notes): no sandbox as root, and no
# background traffic towards Google, which the closed network refuses noisily.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--mute-audio"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "console"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 860}

# Extra models whose ids would run as markup if the console ever parsed data as HTML.
HOSTILE_MODELS = """
[[models]]
id = "<img src=x onerror=window.__xss=1>"
provider = "openai"
input = "100"
output = "300"
"""

expect.set_options(timeout=15_000)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Per module, not per session: while Playwright's sync API is open it keeps an
    asyncio loop running on the main thread, and later tests' ``asyncio.run`` fails."""
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"no chromium at {CHROMIUM}: install Debian's package (apt-get install chromium), as .ci/run does")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def gateway(fake: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    directory = tmp_path_factory.mktemp("console")
    with fresh_database("postgres", directory) as url:
        running = start(url, fake, directory, extra=HOSTILE_MODELS)
        try:
            yield running
        finally:
            running.stop()


@dataclass
class Console:
    """Pages on one server, watched for errors and for requests to other origins."""

    browser: Browser
    origin: str
    name: str
    contexts: list[BrowserContext] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def allow(self, pattern: str) -> None:
        """Expect console errors matching ``pattern`` (e.g. the 401 of a refused login)."""
        self.allowed.append(re.compile(pattern))

    def page(self, viewport: dict[str, int] | None = None, session: str | None = None) -> Page:
        """A fresh browser profile at ``viewport``; signed in with ``session`` if given."""
        context = self.browser.new_context(viewport=viewport or DESKTOP, base_url=self.origin)
        self.contexts.append(context)
        if session is not None:
            context.add_init_script(
                "if (!sessionStorage.getItem('seeded')) { sessionStorage.setItem('seeded', '1');"
                f" localStorage.setItem('tokensea.session', JSON.stringify({{token: {session!r}, expiresAt: null}})); }}"
            )
        page = context.new_page()
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))
        page.on("request", self._request)
        page.on("dialog", lambda dialog: (self.errors.append(f"browser dialog: {dialog.message}"), dialog.dismiss()))
        return page

    def _console(self, message: Any) -> None:
        if message.type in ("error", "warning") and not any(p.search(message.text) for p in self.allowed):
            self.errors.append(f"{message.type}: {message.text}")

    def _request(self, request: Any) -> None:
        self.requests.append(request.url)
        if not request.url.startswith((self.origin + "/", "data:", "blob:")):
            self.foreign.append(request.url)

    def shot(self, page: Page, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        page.mouse.move(0, 0)  # no hover highlight in the picture
        page.screenshot(path=str(path), full_page=True)
        return path

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def console(browser: Browser, gateway: Gateway, request: pytest.FixtureRequest) -> Iterator[Console]:
    watched = Console(browser, gateway.url, request.node.name)
    yield watched
    watched.close()
    assert watched.errors == [], "the browser reported errors"
    assert watched.foreign == [], "the console asked another origin"
