"""The web console: one HTML page at ``/`` and its files under ``/console/``.

The console is a client of the account API like any other: it holds no server-side
state and reaches nothing the API does not offer. Its page and files are served with
a Content-Security-Policy that allows scripts, styles and connections from this origin
only (no inline script, no framing), so data rendered from the API can never run as
code even if a rendering bug let markup through. ``[server] console = false`` leaves
this blueprint out.
"""

from __future__ import annotations

from functools import cache

from sanic import Blueprint, HTTPResponse, Request

from edge import assets
from edge.errors import Problem

blueprint = Blueprint("console")

POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "font-src 'self'",
        "manifest-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
HEADERS = {
    "content-security-policy": POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",  # an ?invite= link's code stays on this page
    "x-frame-options": "DENY",  # frame-ancestors for browsers that predate it
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}


@cache
def files() -> dict[str, assets.Asset]:
    return assets.load("console")


@blueprint.route("/", methods=["GET", "HEAD"])
async def page(request: Request) -> HTTPResponse:
    return assets.respond(request, files()["index.html"], HEADERS)


@blueprint.route("/console/<name:str>", methods=["GET", "HEAD"])
async def asset(request: Request, name: str) -> HTTPResponse:
    found = files().get(name)
    if found is None or name == "index.html":
        raise Problem(404, "not_found", "no such file")
    return assets.respond(request, found, HEADERS)
