"""Admission on SQLite: ``ledger.admission.decide`` under the database's write lock.

One transaction per batch (``BEGIN IMMEDIATE`` takes the write lock first): the
accounts are read, the ``ts_settled`` inbox is taken and folded into them, each hold is
decided in order against the balances and windows as the ones before it left them, and
the accounts and the admitted holds are written back. ``ts_admit`` does the same on
PostgreSQL in one statement.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any
from uuid import UUID

from domain.money import EXACT
from domain.rates import Limits, Window
from ledger.admission import Account, Hold, count_admitted, decide
from ledger.database import Database, to_decimal, to_optional_datetime, to_optional_decimal, to_uuid
from ledger.errors import Refused
from ledger.group_commit import Pending

_WINDOW = "rpm, tpm, max_concurrency, holds, rate_at, rpm_level, tpm_level"


def _account(row: Any, limit: Any, **extra: Any) -> Account:
    return Account(
        row["status"], limit, to_decimal(row["used"]), to_decimal(row["held"]),
        limits=Limits(row["rpm"], row["tpm"], row["max_concurrency"]),
        window=Window(row["rate_at"], float(row["rpm_level"]), float(row["tpm_level"]), int(row["holds"])),
        **extra,
    )


def admit_under_write_lock(db: Database, conn: Any, batch: list[Pending[Hold]]) -> None:
    user_ids = sorted({p.job.facts.user_id for p in batch})
    key_ids = sorted({p.job.facts.key_id for p in batch})
    now = datetime.now(timezone.utc)
    with db.transaction(conn) as cur:
        cur.execute(
            db.sql(f"SELECT user_id, status, granted, used, held, {_WINDOW} FROM ts_users "
                   f"WHERE user_id IN ({db.in_list(len(user_ids))})"),
            user_ids,
        )
        users = {to_uuid(r["user_id"]): _account(r, to_decimal(r["granted"])) for r in cur.fetchall()}
        cur.execute(
            db.sql(f"SELECT key_id, user_id, status, quota, used, held, expires_at, {_WINDOW} FROM ts_keys "
                   f"WHERE key_id IN ({db.in_list(len(key_ids))})"),
            key_ids,
        )
        keys = {
            to_uuid(r["key_id"]): _account(r, to_optional_decimal(r["quota"]), owner=to_uuid(r["user_id"]),
                                           expires_at=to_optional_datetime(r["expires_at"]))
            for r in cur.fetchall()
        }
        accounts: dict[UUID, Account] = {**users, **keys}
        if accounts:
            cur.execute(
                db.sql(f"DELETE FROM ts_settled WHERE account_id IN ({db.in_list(len(accounts))}) "
                       "RETURNING account_id, released, cost, holds, token_refund"),
                list(accounts),
            )
            _absorb(accounts, cur.fetchall())
        admitted: list[tuple[Pending[Hold], Any]] = []
        refused: list[tuple[Pending[Hold], Refused]] = []
        for pending in batch:
            hold = pending.job
            user, key = users.get(hold.facts.user_id), keys.get(hold.facts.key_id)
            decision = decide(hold, user, key, now)
            if isinstance(decision, Refused):
                refused.append((pending, decision))
                continue
            assert user is not None and key is not None
            count_admitted(user, key, hold, decision)
            admitted.append((pending, decision))
        for table, id_column, rows in (("ts_users", "user_id", users), ("ts_keys", "key_id", keys)):
            cur.executemany(
                db.sql(f"UPDATE {table} SET used = %s, held = %s, holds = %s, rate_at = %s, rpm_level = %s, "
                       f"tpm_level = %s WHERE {id_column} = %s"),
                [(a.used, a.held, a.window.holds, a.window.at, a.window.requests, a.window.tokens, account_id)
                 for account_id, a in rows.items()],
            )
        cur.executemany(
            db.sql(
                "INSERT INTO ts_holds (request_id, user_id, key_id, amount, instance_id, key_name, model, provider, "
                "endpoint, stream, requested_at, tokens) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            ),
            [
                (f.request_id, f.user_id, f.key_id, admission.reserved, p.job.instance_id, f.key_name, f.model,
                 f.provider, f.endpoint, f.stream, f.requested_at, admission.tokens)
                for p, admission in admitted
                for f in (p.job.facts,)
            ],
        )
    for pending, admission in admitted:  # decided against what committed, and only then
        pending.set_result(admission.limit)
    for pending, refusal in refused:
        pending.set_exception(refusal)


def _absorb(accounts: dict[UUID, Account], settled: list[Any]) -> None:
    """Fold the charges taken from the inbox into the accounts this transaction holds:
    money now; holds and tokens when each account's window is brought up to date."""
    for row in settled:
        account = accounts[to_uuid(row["account_id"])]
        account.used = EXACT.add(account.used, to_decimal(row["cost"]))
        account.held = EXACT.subtract(account.held, to_decimal(row["released"]))
        holds, refund = account.settled
        account.settled = (holds + int(row["holds"]), refund + int(row["token_refund"]))
