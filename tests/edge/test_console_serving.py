"""How the console and /docs are served: headers, caching, no CDN, the switch that turns
the console off, and checks on the shipped files themselves. The browser tests
(tests/console/) drive the pages; these need no browser. One backend: nothing here
touches the database beyond start-up."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakes.upstream import FakeUpstream
from tests.gateway import Gateway, start

STATIC = Path(__file__).resolve().parents[2] / "edge" / "static"
CONSOLE = STATIC / "console"


@pytest.fixture(scope="module")
def served(fake: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    directory = tmp_path_factory.mktemp("console-on")
    running = start(f"sqlite:///{directory / 'tokensea.db'}", fake, directory)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def api_only(fake: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    directory = tmp_path_factory.mktemp("console-off")
    running = start(f"sqlite:///{directory / 'tokensea.db'}", fake, directory, extra="console = false")
    yield running
    running.stop()


def directives(policy: str) -> dict[str, str]:
    return {part.split(" ", 1)[0]: part.split(" ", 1)[1] if " " in part else "" for part in policy.split("; ")}


def test_the_page_and_its_protective_headers(served: Gateway) -> None:
    for method in ("GET", "HEAD"):
        answer = httpx.request(method, f"{served.url}/")
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "text/html; charset=utf-8"
        policy = directives(answer.headers["content-security-policy"])
        assert policy["default-src"] == "'none'" and policy["script-src"] == "'self'"
        assert policy["connect-src"] == "'self'" and policy["frame-ancestors"] == "'none'"
        assert "unsafe" not in answer.headers["content-security-policy"]
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert answer.headers["x-frame-options"] == "DENY"
    assert answer.content == b""  # HEAD
    page = httpx.get(f"{served.url}/").text
    assert '<script type="module" src="/console/app.js"></script>' in page


def test_assets_are_compressed_and_revalidated(served: Gateway) -> None:
    plain = httpx.get(f"{served.url}/console/dashboard.js", headers={"accept-encoding": "identity"})
    assert plain.status_code == 200 and plain.headers["content-type"] == "text/javascript; charset=utf-8"
    assert plain.content == (CONSOLE / "dashboard.js").read_bytes()
    assert "content-security-policy" in plain.headers and plain.headers["cache-control"] == "no-cache"
    with httpx.Client() as http:
        packed = http.get(f"{served.url}/console/dashboard.js", headers={"accept-encoding": "gzip"})
    assert packed.headers["content-encoding"] == "gzip" and packed.content == plain.content
    again = httpx.get(f"{served.url}/console/dashboard.js", headers={"if-none-match": plain.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert httpx.get(f"{served.url}/console/style.css").headers["content-type"] == "text/css; charset=utf-8"


@pytest.mark.parametrize("path", ["/console/nope.js", "/console/..%2Fsetup.cfg", "/console/%2e%2e/app.py",
                                  "/console/index.html", "/console/", "/docs/..%2F..%2Fsetup.cfg"])
def test_nothing_else_is_served(served: Gateway, path: str) -> None:
    answer = httpx.get(f"{served.url}{path}")
    assert answer.status_code == 404
    assert answer.json()["error"]["type"] == "not_found"


def test_docs_load_swagger_ui_from_this_server(served: Gateway) -> None:
    page = httpx.get(f"{served.url}/docs")
    assert page.status_code == 200
    assert "img-src 'self' data:" in page.headers["content-security-policy"]
    assert "unsafe" not in page.headers["content-security-policy"]
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(s.startswith("/") for s in sources), sources
    for source in sources:
        if source.startswith("/docs/"):
            assert httpx.get(f"{served.url}{source}").status_code == 200, source
    bundle = httpx.get(f"{served.url}/docs/swagger-ui-bundle.js", headers={"accept-encoding": "gzip"})
    assert bundle.headers["content-encoding"] == "gzip"
    assert bundle.content == (STATIC / "swagger-ui" / "swagger-ui-bundle.js").read_bytes()


def test_the_vendored_swagger_ui_is_the_published_one() -> None:
    manifest = (STATIC / "swagger-ui" / "VENDORED.txt").read_text()
    digests = re.findall(r"^([0-9a-f]{64})  (\S+)$", manifest, flags=re.MULTILINE)
    shipped = {p.name for p in (STATIC / "swagger-ui").iterdir()} - {"VENDORED.txt"}
    assert {name for _, name in digests} == shipped
    for digest, name in digests:
        assert hashlib.sha256((STATIC / "swagger-ui" / name).read_bytes()).hexdigest() == digest, name


def test_console_false_serves_the_api_only(api_only: Gateway) -> None:
    for path in ("/console/app.js", "/console/style.css"):
        assert httpx.get(f"{api_only.url}{path}").status_code == 404, path
    root = httpx.get(f"{api_only.url}/")  # no page: a JSON description, for clients that probe the base URL
    assert root.status_code == 200 and root.json()["name"] == "TokenSea" and "html" not in root.headers["content-type"]
    assert httpx.head(f"{api_only.url}/").status_code == 200
    token, _ = api_only.register("apionly")
    assert api_only.me(token)["username"] == "apionly"
    assert httpx.get(f"{api_only.url}/docs").status_code == 200


# -- the shipped files ---------------------------------------------------------------

SCRIPTS = sorted(CONSOLE.glob("*.js"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_never_turn_data_into_markup_or_code(script: Path) -> None:
    source = script.read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
                 "setTimeout(\"", "javascript:"):
        assert sink not in source, f"{script.name} uses {sink}"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_name_no_other_origin(script: Path) -> None:
    urls = set(re.findall(r"https?://[^\s\"'`)]+", script.read_text()))
    assert urls <= {"http://www.w3.org/2000/svg"}, urls


def test_every_module_is_preloaded_so_the_first_page_takes_one_round() -> None:
    """A module found only through another's import waits for that one to arrive:
    index.html lists every module, and every import names a shipped file."""
    page = (CONSOLE / "index.html").read_text()
    preloaded = set(re.findall(r'<link rel="modulepreload" href="/console/([^"]+)">', page))
    assert preloaded == {p.name for p in SCRIPTS}
    for script in SCRIPTS:
        for imported in re.findall(r'from "\./([^"]+)"', script.read_text()):
            assert (CONSOLE / imported).is_file(), f"{script.name} imports {imported}"
    assert "<script>" not in page and " style=" not in page  # nothing inline for the CSP to refuse
    assert not re.search(r"https?://", page)
