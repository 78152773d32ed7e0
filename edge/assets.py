"""Static files shipped inside the package (the console, Swagger UI), served from memory.

Each folder is read once, when the app is built: a few hundred kilobytes held by each
worker, no disk access per request, and no path from a URL ever reaches the file
system (a name is looked up in a dict, so ``..`` cannot escape). Every file gets a
strong ETag from its content, and a gzip copy when that is smaller: browsers revalidate
with ``If-None-Match`` and get a 304 without a body.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path

from sanic import HTTPResponse, Request

TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".txt": "text/plain; charset=utf-8",
}
ROOT = Path(__file__).resolve().parent / "static"


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes | None  # None when compressing does not pay
    etag: str
    content_type: str


def _asset(path: Path) -> Asset:
    body = path.read_bytes()
    packed = gzip.compress(body, compresslevel=9, mtime=0)
    digest = hashlib.sha256(body).hexdigest()[:32]
    return Asset(body, packed if len(packed) < len(body) * 0.9 else None, f'"{digest}"', TYPES[path.suffix])


def load(folder: str) -> dict[str, Asset]:
    """Every servable file of ``static/<folder>``, by file name (no sub-folders)."""
    return {
        path.name: _asset(path)
        for path in sorted((ROOT / folder).iterdir())
        if path.is_file() and path.suffix in TYPES
    }


def respond(request: Request, asset: Asset, headers: dict[str, str], cache: str = "no-cache") -> HTTPResponse:
    """The asset, or 304 if the browser holds this version. ``no-cache`` means "ask
    every time": the console updates the moment the server does, for the price of a
    304 per file."""
    common = {**headers, "etag": asset.etag, "cache-control": cache, "vary": "accept-encoding"}
    if asset.etag in request.headers.get("if-none-match", ""):
        return HTTPResponse(status=304, headers=common)
    if asset.gzipped is not None and "gzip" in request.headers.get("accept-encoding", ""):
        return HTTPResponse(asset.gzipped, headers={**common, "content-encoding": "gzip"}, content_type=asset.content_type)
    return HTTPResponse(asset.body, headers=common, content_type=asset.content_type)
