"""Deterministic aggregate ids: the same business reference always names the same
aggregate, so writing it twice collides in the event store instead of counting twice."""

from __future__ import annotations

from hashlib import sha1
from uuid import UUID

_USERS = UUID("6f1c5d8e-2b0a-4a51-9a57-5f0c3a6e1d01")
_CHARGES = UUID("6f1c5d8e-2b0a-4a51-9a57-5f0c3a6e1d02")
_GRANTS = UUID("6f1c5d8e-2b0a-4a51-9a57-5f0c3a6e1d03")
_REWARD_SLOTS = UUID("6f1c5d8e-2b0a-4a51-9a57-5f0c3a6e1d04")


def _named(namespace: UUID, name: str) -> UUID:
    """``uuid.uuid5``, without its per-call import and conversions (it runs for every
    request): SHA-1 of the namespace and the name, marked as version 5."""
    return UUID(bytes=sha1(namespace.bytes + name.encode(), usedforsecurity=False).digest()[:16], version=5)


def user_id_for(username: str) -> UUID:
    """Usernames are unique regardless of case."""
    return _named(_USERS, username.lower())


def charge_id_for(request_id: str) -> UUID:
    """One charge per request id, ever."""
    return _named(_CHARGES, request_id)


def grant_id_for(reference: str) -> UUID:
    """One grant per reference, e.g. ``signup:<user id>`` or an admin's idempotency key."""
    return _named(_GRANTS, reference)


def reward_slot_id_for(inviter: UUID, day: str, slot: int) -> UUID:
    """One of an inviter's daily invite rewards: a day has as many slots as the cap."""
    return _named(_REWARD_SLOTS, f"{inviter}:{day}:{slot}")
