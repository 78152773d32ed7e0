"""Deterministic aggregate ids: the same business reference always names the same
aggregate, so writing it twice collides in the event store instead of counting twice."""

from __future__ import annotations

from uuid import UUID, uuid5

_USERS = UUID("6f1c5d8e-2b0a-4a51-9a57-5f0c3a6e1d01")
_CHARGES = UUID("6f1c5d8e-2b0a-4a51-9a57-5f0c3a6e1d02")
_GRANTS = UUID("6f1c5d8e-2b0a-4a51-9a57-5f0c3a6e1d03")


def user_id_for(username: str) -> UUID:
    """Usernames are unique regardless of case."""
    return uuid5(_USERS, username.lower())


def charge_id_for(request_id: str) -> UUID:
    """One charge per request id, ever."""
    return uuid5(_CHARGES, request_id)


def grant_id_for(reference: str) -> UUID:
    """One grant per reference, e.g. ``signup:<user id>`` or an admin's idempotency key."""
    return uuid5(_GRANTS, reference)
