"""What a password must be: at least 6 characters, not the username (in any case), and
not one of the 10,000 most common passwords (``edge/data/common-passwords.txt``, from
SecLists; its header names the source). Compared in lower case, so ``Password1`` is as
common as ``password1``."""

from __future__ import annotations

import functools
from importlib import resources

MIN_LENGTH = 6
MAX_LENGTH = 1024


@functools.cache
def _common() -> frozenset[str]:
    text = resources.files("edge").joinpath("data/common-passwords.txt").read_text(encoding="utf-8")
    return frozenset(line for line in text.splitlines() if line and not line.startswith("#"))


def weakness(password: str, username: str) -> str | None:
    """Why ``password`` is refused for ``username``, or None if it is acceptable."""
    if len(password) < MIN_LENGTH:
        return f"at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"at most {MAX_LENGTH} characters"
    lowered = password.lower()
    if lowered == username.lower():
        return "must not be the username"
    if lowered in _common():
        return "one of the most common passwords; choose another"
    return None
