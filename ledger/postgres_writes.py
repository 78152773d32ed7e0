"""The group commit's drivers for PostgreSQL: a batch of holds is one call of
``ts_admit``, a batch of charges one call of ``ts_append_charges`` (both PL/pgSQL, in
``ledger/migrations``), each on an asynchronous connection of its own with its statement
prepared, driven through libpq (``ledger.wire``): one round trip per batch, and the
account rows locked for one statement rather than a round trip.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any
from uuid import UUID

import orjson
from psycopg.sql import SQL, Identifier

from domain.charges import Charge
from domain.money import Money
from ledger.admission import Hold
from ledger.chain import digest
from ledger.database import Database, to_optional_decimal
from ledger.errors import Refused
from ledger.group_commit import Pending
from ledger.jobs import ChargeDriver, HoldDriver
from ledger.wire import Statement

LOCK_TIMEOUT = b"30s"  # a charge waits this long at most for the events table's lock
_ADMIT = Statement(
    "ts_admit",
    "SELECT hold_position, reason, available, output_limit, retry_after FROM ts_admit($1::jsonb, $2::timestamptz)",
)


class _Prepared:
    """A fresh asyncio connection per ``connect``, with the driver's statement prepared."""

    db: Database
    statement: Statement

    async def connect(self) -> Any:
        conn = await self.db.aconnect()
        try:
            await self.statement.prepare(conn)
        except BaseException:
            conn.pgconn.finish()
            raise
        return conn

    def abandon(self, conn: Any) -> None:
        conn.pgconn.finish()

    async def close(self, conn: Any) -> None:
        await conn.close()


class PostgresHolds(_Prepared, HoldDriver):
    statement = _ADMIT

    def __init__(self, db: Database, *, admitted: Callable[[int], None], unsure: Callable[[list[str]], None]) -> None:
        super().__init__(admitted=admitted, unsure=unsure)
        self.db = db

    async def execute(self, conn: Any, batch: list[Pending[Hold]]) -> None:
        now = datetime.now(timezone.utc).isoformat().encode()
        resolve_admissions(batch, await _ADMIT.run(conn, [holds_json(batch), now]))
        self._admitted(len(batch))

    async def held(self, conn: Any, request_ids: list[str]) -> dict[str, Any]:
        cursor = await conn.execute("SELECT request_id, amount FROM ts_holds WHERE request_id = ANY(%s)", (request_ids,))
        return {row["request_id"]: row["amount"] for row in await cursor.fetchall()}


class PostgresCharges(_Prepared, ChargeDriver):
    """The events, their notification, and each hold released into the ``ts_settled``
    inbox, in one statement."""

    def __init__(self, db: Database, app: Any) -> None:
        super().__init__(app)
        self.db = db
        schema = Identifier(db.schema)
        call = SQL("SELECT {schema}.ts_append_charges($1::jsonb, $2::text)").format(schema=schema)
        self.statement = Statement("ts_append_charges", call.as_string())
        self._stored = SQL("SELECT originator_id, state FROM {schema}.{events} WHERE originator_id = ANY(%s)").format(
            schema=schema, events=Identifier(app.recorder.events_table_name)
        )

    async def execute(self, conn: Any, batch: list[Pending[Charge.TokensConsumed]]) -> None:
        charges = [pending.job for pending in batch]
        stored = [self._mapper.to_stored_event(charge) for charge in charges]
        await self.statement.run(conn, [charges_json(charges, stored), LOCK_TIMEOUT])
        for pending in batch:
            pending.set_result(True)

    async def stored(self, conn: Any, ids: list[UUID]) -> dict[UUID, bytes]:
        cursor = await conn.execute(self._stored, (ids,))
        return {row["originator_id"]: bytes(row["state"]) for row in await cursor.fetchall()}


def holds_json(batch: list[Pending[Hold]]) -> bytes:
    """``ts_admit``'s first parameter: the holds as one JSON array, amounts as strings."""
    return orjson.dumps(
        [
            [f.request_id, f.user_id, f.key_id, str(p.job.amount.cents), p.job.instance_id, f.key_name,
             f.model, f.provider, f.endpoint, f.stream, f.requested_at,
             None if (o := p.job.output) is None else str(o.per_token), None if o is None else o.most,
             p.job.tokens, plan.rpm, plan.tpm, plan.max_concurrency]
            for p in batch
            for f, plan in ((p.job.facts, p.job.plan_limits),)
        ]
    )


def resolve_admissions(batch: list[Pending[Hold]], answers: list[Any]) -> None:
    """``ts_admit`` answers a row for each refused hold (with its reason) and each hold
    admitted with an output limit of its choosing (``output_limit``); any other hold of
    ``batch`` was admitted as it was asked."""
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
        retry_after = row["retry_after"]
        if retry_after is not None or row["reason"].endswith("_tpm"):
            pending.set_exception(Refused(row["reason"], retry_after=None if retry_after is None else float(retry_after)))
        elif available is None:
            pending.set_exception(Refused(row["reason"]))
        else:
            needed = pending.job.reserved(None if pending.job.output is None else 1)
            pending.set_exception(Refused(row["reason"], needed=Money(needed), available=Money(available)))


def charges_json(charges: list[Any], stored_events: list[Any]) -> bytes:
    """``ts_append_charges``'s first parameter: each event's stored form (its state as
    hex), what releasing its hold needs (the tokens it used, for the tokens window), and
    its digest (hex), which the function links into the hash chain (``ledger.chain``)."""
    return orjson.dumps(
        [
            [e.originator_id, e.originator_version, e.topic, e.state.hex(),
             c.request_id, c.user_id, c.key_id, str(c.cost.cents),
             c.input_tokens + c.output_tokens + c.cache_read_tokens + c.cache_write_tokens,
             digest(c).hex()]
            for e, c in zip(stored_events, charges, strict=True)
        ]
    )
