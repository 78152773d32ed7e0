"""TokenSea's ledger: every money movement as an event, and the guarantees around it.

Invariants (SPEC §5) and how this package keeps them:

1. *Derived balances.* Events (``QuotaGranted``, ``KeyCreated``…, ``TokensConsumed``)
   are the only truth. The index tables (``ts_users``, ``ts_keys``) are a fold of the
   events written in the same transaction (``ledger.effects``); ``ledger.replay``
   recomputes them from the events alone.
2. *Exact money.* ``Decimal`` cents end to end; NUMERIC on PostgreSQL, TEXT on SQLite,
   arithmetic only in Python's exact context.
3. *No overdraft.* A request is admitted only if its worst-case cost fits in
   ``granted − used − held`` for both the user and the key, decided under row locks
   that every process and host takes in the same order (``ledger.admission``). The
   charge is the actual usage; the hold is released in the charge's transaction.
4. *Exactly once.* A charge's aggregate id is ``uuid5(request id)``: a second charge
   for a request collides in the event store and is reported as a duplicate.
5. *Durable.* Holds are written before a request reaches an upstream; a charge is
   committed (synchronous commit) before the client sees the end of the answer;
   holds left by a dead process are settled as ``interrupted`` (``ledger.recovery``).
6. *Fail closed.* An unreachable database surfaces as ``LedgerUnavailable``
   (``ledger.failures``); the edge answers 503. Connections are re-opened on the next
   call, so service resumes by itself when the database returns.
7. *Replayable.* ``ledger.replay`` folds the ledger from the first event.

Throughput: holds and charges go through one group commit (``ledger.group_commit``),
with a driver per backend: many requests share one transaction and one fsync, each
caller awaiting its own outcome. Users, keys and grants are few and run one at a time
(``ledger.command_runner``). The schema changes only by migration (``ledger.migrations``).
"""

from ledger.admission import Hold, OutputBound
from ledger.database import Database
from ledger.errors import (
    Conflict,
    InvalidValue,
    LedgerError,
    LedgerUnavailable,
    NotFound,
    Refused,
    SchemaNotCurrent,
)
from ledger.service import Ledger

__all__ = [
    "Conflict",
    "Database",
    "Hold",
    "InvalidValue",
    "Ledger",
    "LedgerError",
    "LedgerUnavailable",
    "NotFound",
    "OutputBound",
    "Refused",
    "SchemaNotCurrent",
]
