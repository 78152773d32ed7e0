"""The ledger's errors. Domain errors (``domain.errors``) pass through unchanged.

    LedgerError
    ├── LedgerUnavailable   the database cannot be reached or written: fail closed (503)
    ├── InvalidValue        a value the database cannot store (a NUL character): the caller's (400)
    ├── NotFound            no such user or key (or not the caller's)
    ├── Conflict            a unique name is taken, or concurrent changes kept colliding
    ├── Refused             admission refused: not enough quota, or the account may not spend
    └── SchemaNotCurrent    the database's schema is not this release's: run `tokensea db upgrade`
"""

from __future__ import annotations

from domain.money import Money


class LedgerError(Exception):
    """Base of the ledger's own errors."""


class LedgerUnavailable(LedgerError):
    """The database cannot be reached or written; callers must fail closed."""


class InvalidValue(LedgerError):
    """A value the database refuses to store, such as text with a NUL character."""


class NotFound(LedgerError):
    """No such user or key, or it belongs to someone else."""


class Conflict(LedgerError):
    """A unique value is taken, or concurrent writers kept colliding."""


class Refused(LedgerError):
    """A request cannot be admitted.

    ``reason`` is one of ``insufficient_user_quota``, ``insufficient_key_quota`` (with
    ``needed`` and ``available``); ``user_disabled``, ``key_disabled``, ``key_expired``,
    ``unknown_account``; or a rate limit, ``user_`` or ``key_`` then ``rpm``, ``tpm`` or
    ``concurrency`` (with ``retry_after`` in seconds, None if waiting cannot help).
    """

    def __init__(
        self, reason: str, needed: Money | None = None, available: Money | None = None, *,
        retry_after: float | None = None,
    ) -> None:
        self.reason = reason
        self.needed = needed
        self.available = available
        self.retry_after = retry_after
        super().__init__(reason)

    @property
    def rate_limited(self) -> bool:
        return self.reason.endswith(("_rpm", "_tpm", "_concurrency"))


class SchemaNotCurrent(LedgerError):
    """The database's schema is not the one this release uses: the message names the
    command to run (``tokensea db upgrade``)."""
