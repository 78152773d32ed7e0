"""The request log's cursors: a round trip keeps the exact place (to the microsecond,
either side of 1970, at the ends of BIGINT), and only this server's secret makes one."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from edge import cursors
from edge.errors import Problem
from edge.security import Sessions
from projections.queries import LogPosition


def _tag(secret: str) -> cursors.Tag:
    sessions = Sessions(secret, 7)
    return lambda data: sessions.tag(cursors.PURPOSE, data)


@pytest.mark.parametrize("place", [
    LogPosition(datetime(2026, 12, 6, 7, 25, 5, 123456, tzinfo=timezone.utc), 42),
    LogPosition(datetime(2026, 12, 6, 7, 25, 5, tzinfo=timezone.utc), 1),  # no microseconds: SQLite's text drops them
    LogPosition(datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc), 0),
    LogPosition(datetime(1, 1, 1, tzinfo=timezone.utc), cursors.MAX_POSITION),
    LogPosition(datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc), 7),
])
def test_a_cursor_names_exactly_the_place_it_was_made_from(place: LogPosition) -> None:
    tag = _tag("s" * 64)
    text = cursors.encode(place, tag)
    assert len(text) <= cursors.MAX_LENGTH and text.isascii() and "=" not in text
    assert cursors.decode(text, tag) == place


def test_another_secret_or_one_changed_character_is_refused() -> None:
    place = LogPosition(datetime(2026, 1, 1, tzinfo=timezone.utc), 5)
    text = cursors.encode(place, _tag("s" * 64))
    with pytest.raises(Problem) as refused:
        cursors.decode(text, _tag("t" * 64))
    assert refused.value.status == 400 and refused.value.param == "cursor"
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for i in range(len(text)):
        for other in alphabet.replace(text[i], ""):  # every other character, in every place
            with pytest.raises(Problem):
                cursors.decode(text[:i] + other + text[i + 1:], _tag("s" * 64))
