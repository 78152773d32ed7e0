"""Admission: reserve a request's worst-case cost before it reaches an upstream.

A hold is a row in ``ts_holds`` plus the same amount added to ``held`` on the user and
on the key, written in one transaction under row locks on both (``FOR UPDATE`` on
PostgreSQL, the database write lock on SQLite). A request is admitted only if, for the
user and for the key, ``granted - used - held >= amount`` at that moment. Every
process and host takes the same locks in the same order (users, then keys, by id), so
concurrent admissions serialize per account and can never overdraw it: the sum of
holds and charges stays within the grant.

A hold is released only by the request's ``TokensConsumed`` (``ledger.effects``), or
by recovery when the process that held it died. A charge does not touch the account
rows: it leaves its cost and released hold in the ``ts_settled`` inbox, and admission
folds the inbox into the rows it has just locked before it decides. Until then the
rows overstate ``used + held`` (a charge moves at most its hold from ``held`` to
``used``), so a decision on them is never too generous. Hold transactions commit with
``synchronous_commit = off`` on PostgreSQL: they hold no money, they survive any crash
of the edge (the server keeps them), and they keep an fsync off the request path.

On PostgreSQL the whole batch is one call of the ``ts_admit`` function
(``ledger.schema``), which applies ``decide``'s rule where the rows are: one round trip
per batch, and locks held for the length of one statement, not of a round trip. On
SQLite, ``decide`` runs here under the database write lock. The same tests run on both.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson

from domain.charges import RequestFacts
from domain.money import EXACT, Money
from ledger.batching import Pending
from ledger.database import Database, to_decimal, to_optional_datetime, to_optional_decimal, to_uuid
from ledger.errors import Refused
from ledger.wire import Statement


@dataclass(frozen=True)
class OutputBound:
    """An output limit for the ledger to choose: the largest, up to ``most`` tokens, that
    the accounts can pay at ``per_token`` cents per token of limit (output price × plan
    multiplier × choices, / 1e6). Chosen under the admission's row locks, so concurrent
    calls without a client limit can never overdraw."""

    per_token: Decimal
    most: int


@dataclass(frozen=True)
class Hold:
    """A reservation: ``amount`` (the prompt bound's cost, or the whole worst case when
    the output limit is fixed), plus ``limit × per_token`` when ``output`` is set."""

    facts: RequestFacts
    amount: Money
    instance_id: str
    output: OutputBound | None = None

    def reserved(self, limit: int | None) -> Decimal:
        """The amount held when admitted with ``limit`` (None: a fixed hold)."""
        if limit is None or self.output is None:
            return self.amount.cents
        return EXACT.add(self.amount.cents, EXACT.multiply(Decimal(limit), self.output.per_token))

    def limit_of(self, reserved: Decimal) -> int | None:
        """The output limit a hold of ``reserved`` was admitted with (None: a fixed hold)."""
        if self.output is None:
            return None
        if not self.output.per_token:
            return self.output.most
        return int(EXACT.divide_int(EXACT.subtract(reserved, self.amount.cents), self.output.per_token))


@dataclass
class _Account:
    status: str
    limit: Decimal | None  # None: unlimited (a key without quota)
    used: Decimal
    held: Decimal
    owner: UUID | None = None
    expires_at: datetime | None = None
    changed: bool = False

    def available(self) -> Decimal | None:
        if self.limit is None:
            return None
        return EXACT.subtract(EXACT.subtract(self.limit, self.used), self.held)


def decide(hold: Hold, user: _Account | None, key: _Account | None, now: datetime) -> Refused | int | None:
    """Why ``hold`` cannot be admitted against these accounts; else the output limit it
    is admitted with (None for a fixed hold), reserving ``hold.reserved(limit)``."""
    if user is None or key is None or key.owner != hold.facts.user_id:
        return Refused("unknown_account")
    if user.status != "active":
        return Refused("user_disabled")
    if key.status != "active":
        return Refused("key_disabled")
    if key.expires_at is not None and key.expires_at <= now:
        return Refused("key_expired")
    output = hold.output
    needed = hold.amount.cents if output is None else EXACT.add(hold.amount.cents, output.per_token)
    for account, reason in ((user, "insufficient_user_quota"), (key, "insufficient_key_quota")):
        available = account.available()
        if available is not None and available < needed:
            return Refused(reason, needed=Money(needed), available=Money(max(available, Decimal(0))))
    if output is None:
        return None
    if not output.per_token:
        return output.most
    room = [a for a in (user.available(), key.available()) if a is not None]
    affordable = EXACT.divide_int(EXACT.subtract(min(room), hold.amount.cents), output.per_token)
    return int(min(affordable, Decimal(output.most)))


def admit_batch(db: Database, conn: Any, batch: list[Pending[Hold]]) -> None:
    """Decide and record every hold of ``batch`` in one transaction: one call of
    ``ts_admit`` on PostgreSQL, ``decide`` under the write lock on SQLite."""
    if db.is_postgres:
        _admit_in_database(conn, batch)
        return
    user_ids = sorted({p.job.facts.user_id for p in batch})
    key_ids = sorted({p.job.facts.key_id for p in batch})
    now = datetime.now(timezone.utc)
    with db.transaction(conn) as cur:
        users_cur, keys_cur, settled_cur = conn.cursor(), conn.cursor(), conn.cursor()
        users_cur.execute(
            db.sql(
                f"SELECT user_id, status, granted, used, held FROM ts_users "
                f"WHERE user_id IN ({db.in_list(len(user_ids))}) ORDER BY user_id FOR UPDATE"
            ),
            user_ids,
        )
        keys_cur.execute(
            db.sql(
                f"SELECT key_id, user_id, status, quota, used, held, expires_at FROM ts_keys "
                f"WHERE key_id IN ({db.in_list(len(key_ids))}) ORDER BY key_id FOR UPDATE"
            ),
            key_ids,
        )
        accounts_ids = [*user_ids, *key_ids]
        settled_cur.execute(
            db.sql(
                f"DELETE FROM ts_settled WHERE account_id IN ({db.in_list(len(accounts_ids))}) "
                "RETURNING account_id, released, cost"
            ),
            accounts_ids,
        )
        users = {
            to_uuid(r["user_id"]): _Account(r["status"], to_decimal(r["granted"]), to_decimal(r["used"]), to_decimal(r["held"]))
            for r in users_cur.fetchall()
        }
        keys = {
            to_uuid(r["key_id"]): _Account(
                r["status"], to_optional_decimal(r["quota"]), to_decimal(r["used"]), to_decimal(r["held"]),
                owner=to_uuid(r["user_id"]), expires_at=to_optional_datetime(r["expires_at"]),
            )
            for r in keys_cur.fetchall()
        }
        _absorb({**users, **keys}, settled_cur.fetchall())
        for extra in (users_cur, keys_cur, settled_cur):
            extra.close()
        admitted: list[tuple[Pending[Hold], int | None]] = []
        refused: list[tuple[Pending[Hold], Refused]] = []
        for pending in batch:
            hold = pending.job
            user, key = users.get(hold.facts.user_id), keys.get(hold.facts.key_id)
            decision = decide(hold, user, key, now)
            if isinstance(decision, Refused):
                refused.append((pending, decision))
                continue
            assert user is not None and key is not None
            for account in (user, key):
                account.held = EXACT.add(account.held, hold.reserved(decision))
                account.changed = True
            admitted.append((pending, decision))
        _save_held(db, cur, "ts_users", "user_id", users)
        _save_held(db, cur, "ts_keys", "key_id", keys)
        if admitted:
            cur.executemany(
                db.sql(
                    "INSERT INTO ts_holds (request_id, user_id, key_id, amount, instance_id, key_name, "
                    "model, provider, endpoint, stream, requested_at) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                ),
                [
                    (
                        f.request_id, f.user_id, f.key_id, p.job.reserved(limit), p.job.instance_id,
                        f.key_name, f.model, f.provider, f.endpoint, f.stream, f.requested_at,
                    )
                    for p, limit in admitted
                    for f in (p.job.facts,)
                ],
            )
    for pending, limit in admitted:
        pending.set_result(limit)
    for pending, refusal in refused:
        pending.set_exception(refusal)


# One call, two drivers: psycopg's ``execute`` on the writer thread, libpq on the event loop.
_ADMIT = "SELECT hold_position, reason, available, output_limit FROM ts_admit({}::jsonb, {}::timestamptz)"
ADMIT_CALL = _ADMIT.format("%s", "%s")
ADMIT_STATEMENT = Statement("ts_admit", _ADMIT.format("$1", "$2"))


def holds_json(batch: list[Pending[Hold]]) -> bytes:
    """PostgreSQL: ``ts_admit``'s first parameter for ``batch``: the holds as one JSON array."""
    return orjson.dumps(
        [
            [f.request_id, f.user_id, f.key_id, str(p.job.amount.cents), p.job.instance_id, f.key_name,
             f.model, f.provider, f.endpoint, f.stream, f.requested_at,
             None if (o := p.job.output) is None else str(o.per_token), None if o is None else o.most]
            for p in batch
            for f in (p.job.facts,)
        ]
    )


def resolve_admissions(batch: list[Pending[Hold]], answers: list[Any]) -> None:
    """PostgreSQL: ``ADMIT_CALL`` answers a row for each refused hold (with its reason)
    and each hold admitted with an output limit of the ledger's choosing (``output_limit``);
    any other hold of ``batch`` was admitted as it was asked."""
    rows = {int(row["hold_position"]) - 1: row for row in answers}
    for position, pending in enumerate(batch):
        row = rows.get(position)
        if row is None:
            pending.set_result(None)
            continue
        if row["reason"] is None:
            pending.set_result(int(row["output_limit"]))
            continue
        available = to_optional_decimal(row["available"])
        if available is None:
            pending.set_exception(Refused(row["reason"]))
        else:
            needed = pending.job.reserved(None if pending.job.output is None else 1)
            pending.set_exception(Refused(row["reason"], needed=Money(needed), available=Money(available)))


def _admit_in_database(conn: Any, batch: list[Pending[Hold]]) -> None:
    """PostgreSQL: the whole batch in one statement, ``ts_admit`` (``ledger.schema``)."""
    params = (holds_json(batch).decode(), datetime.now(timezone.utc))
    resolve_admissions(batch, conn.execute(ADMIT_CALL, params, prepare=True).fetchall())


def _absorb(accounts: dict[UUID, _Account], settled: list[Any]) -> None:
    """Fold the charges taken from ``ts_settled`` into the accounts this transaction has locked."""
    for row in settled:
        account = accounts[to_uuid(row["account_id"])]
        account.used = EXACT.add(account.used, to_decimal(row["cost"]))
        account.held = EXACT.subtract(account.held, to_decimal(row["released"]))
        account.changed = True


def _save_held(db: Database, cur: Any, table: str, id_column: str, accounts: dict[UUID, _Account]) -> None:
    rows = [(account.used, account.held, account_id) for account_id, account in accounts.items() if account.changed]
    if rows:
        cur.executemany(db.sql(f"UPDATE {table} SET used = %s, held = %s WHERE {id_column} = %s"), rows)
