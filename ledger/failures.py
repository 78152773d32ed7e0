"""What a database error means, decided in one place for every caller of the ledger.

    the database is out of reach, or cannot take the write right now  → LedgerUnavailable (503)
    a value the database cannot store (a NUL character, an overflow)   → InvalidValue (400)
    a unique key taken (a request id, an aggregate version)            → a collision: the caller decides
    anything else (a missing table, a syntax error, a bug of ours)     → not ours to soften: re-raised (500)

Only the first kind fails closed with a 503 and resumes by itself: answering a bug with
"try again later" would hide it from the operator. eventsourcing wraps the drivers'
errors in its own classes, keeping the original as ``__cause__``, which is judged.
"""

from __future__ import annotations

import sqlite3

import psycopg
from eventsourcing import persistence

from ledger.errors import InvalidValue, LedgerError, LedgerUnavailable

# SQLSTATE classes that mean the server cannot take the statement now, though nothing is
# wrong with it: connection (08), resources (53), operator intervention such as a shutdown
# (57), system errors (58), a lock not available (55), a transaction to retry (40).
_TRANSIENT_CLASSES = frozenset({"08", "53", "55", "57", "58", "40"})
_DATA_CLASS = "22"
# SQLite reports every one of these as OperationalError; only these mean "not now".
_SQLITE_TRANSIENT = ("locked", "busy", "unable to open", "disk i/o", "readonly", "disk is full", "interrupted")


def _original(exc: BaseException) -> BaseException:
    """The driver's own error behind eventsourcing's wrapper, if there is one."""
    while isinstance(exc, persistence.PersistenceError) and exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def is_collision(exc: BaseException) -> bool:
    """A unique key was taken: the statement changed nothing, and may be judged alone."""
    found = _original(exc)
    return isinstance(found, psycopg.IntegrityError | sqlite3.IntegrityError | persistence.IntegrityError)


def is_broken(exc: BaseException) -> bool:
    """The connection failed under the statement: the server may have run it all the
    same (its answer was lost), so the caller must find out before sending it again."""
    found = _original(exc)
    if isinstance(found, psycopg.Error):
        state = found.sqlstate
        if state is None:  # raised by the client, not the server: the connection, or a value it refused
            return isinstance(found, psycopg.OperationalError | psycopg.InterfaceError)
        return state.startswith("08") or state == "57P01"  # a connection error, or the server shutting down
    return isinstance(found, OSError | persistence.InterfaceError)


def classify(exc: BaseException) -> LedgerError | None:
    """The ledger's error for a database error, or None for one nobody should soften."""
    found = _original(exc)
    if isinstance(found, LedgerError):
        return found
    if isinstance(found, psycopg.Error):
        state = found.sqlstate
        if state is None:  # raised by the client: a value it cannot send, or the connection
            if isinstance(found, psycopg.DataError):
                return InvalidValue(_first_line(found))
            if isinstance(found, psycopg.OperationalError | psycopg.InterfaceError):
                return LedgerUnavailable(_first_line(found))
            return None
        if state[:2] in _TRANSIENT_CLASSES:
            return LedgerUnavailable(_first_line(found))
        if state[:2] == _DATA_CLASS:
            return InvalidValue(_first_line(found))
        return None
    if isinstance(found, sqlite3.OperationalError):
        message = str(found).lower()
        return LedgerUnavailable(str(found)) if any(word in message for word in _SQLITE_TRANSIENT) else None
    if isinstance(found, sqlite3.DataError):
        return InvalidValue(str(found))
    if isinstance(found, OSError | persistence.OperationalError | persistence.InterfaceError):
        return LedgerUnavailable(str(found))
    if isinstance(found, persistence.DataError):
        return InvalidValue(str(found))
    return None


def _first_line(exc: BaseException) -> str:
    return str(exc).split("\n", 1)[0]
