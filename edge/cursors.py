"""Cursors of the request log: where a page ended, as an opaque string for ``?cursor=``.

A cursor is the last row's ``(created_at, position)``, the log's order, and nothing
else: no user, no filters (every query filters by the caller, so a cursor cannot show
anyone else's rows; the filters come with each request). It is written as
``1.<microseconds since 1970>.<position>`` plus a 12-byte HMAC of that text, in URL-safe
base64 without padding. The HMAC makes a cursor altered by hand a 400 rather than a
position the server never gave; the checks behind it still refuse anything out of range,
whatever the tag says.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from edge.errors import Problem
from projections.queries import LogPosition

PURPOSE = "usage-logs-cursor"
TAG_BYTES = 12
MAX_LENGTH = 128  # a real one is under 60 characters
MAX_POSITION = 2**63 - 1  # BIGINT
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_TEXT = re.compile(r"[A-Za-z0-9_-]+")
_BODY = re.compile(rb"1\.(-?[0-9]{1,19})\.([0-9]{1,19})")

Tag = Callable[[bytes], bytes]


def encode(position: LogPosition, tag: Tag) -> str:
    micros = (position.created_at - EPOCH) // timedelta(microseconds=1)
    body = f"1.{micros}.{position.position}".encode("ascii")
    return base64.urlsafe_b64encode(body + tag(body)[:TAG_BYTES]).rstrip(b"=").decode("ascii")


def decode(text: str, tag: Tag) -> LogPosition:
    """The position ``text`` stands for; a 400 naming ``cursor`` for anything but a
    cursor this server gave out."""
    if len(text) > MAX_LENGTH or not _TEXT.fullmatch(text):
        raise _refused()
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise _refused() from None
    body, given = raw[:-TAG_BYTES], raw[-TAG_BYTES:]
    # Only the one spelling: base64 lets the last character's spare bits vary unseen.
    canonical = base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") == text
    if not canonical or len(raw) <= TAG_BYTES or not hmac.compare_digest(given, tag(body)[:TAG_BYTES]):
        raise _refused()
    match = _BODY.fullmatch(body)
    if match is None:
        raise _refused()
    micros, position = int(match[1]), int(match[2])
    if position > MAX_POSITION:
        raise _refused()
    try:
        created_at = EPOCH + timedelta(microseconds=micros)
    except OverflowError:  # beyond year 9999 (or before year 1)
        raise _refused() from None
    return LogPosition(created_at, position)


def _refused() -> Problem:
    return Problem(400, "invalid_request",
                   "cursor is not one this server gave out: pass a nextCursor unchanged, or start again without cursor",
                   param="cursor")
