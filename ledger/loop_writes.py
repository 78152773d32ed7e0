"""A model call's two writes, made by the event loop that serves it (PostgreSQL).

``Ledger.aadmit`` and ``Ledger.asettle`` come here when called from the loop that first
used them: a hold is one job of the holds lane (``ts_admit``), a charge one job of the
charges lane (``ts_append_charges``), each lane an ``AsyncLane`` on a connection of its
own with its statement prepared (``ledger.wire``). This module says what a batch means
to the ledger: how it is sent, what a collision means, and what a lost answer left.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any

from domain.charges import Charge
from ledger.admission import ADMIT_STATEMENT, Hold, holds_json, resolve_admissions
from ledger.batching import Pending
from ledger.database import Database
from ledger.errors import Conflict
from ledger.lanes import AsyncLane
from ledger.wire import Statement

Failed = Callable[[BaseException, list[Pending[Any]]], None]
Report = Callable[[str], Callable[[int, float], None] | None]


class LoopWrites:
    """The holds lane and the charges lane of the running event loop. ``holds_failed``
    and ``fail`` resolve a batch that failed; ``report(lane)`` gives a lane's
    ``on_batch``."""

    def __init__(self, db: Database, app: Any, *, holds_failed: Failed, fail: Failed, report: Report) -> None:
        self._app = app
        self._recorder = app.recorder  # PostgresLedgerRecorder: the charges' statement and parameters
        self._lock_timeout = self._recorder.lock_timeout.encode()
        self.holds = AsyncLane("ledger-holds-lane", _prepared(db, ADMIT_STATEMENT), _admit, _hold_collided,
                               holds_failed, landed=_holds_landed, on_batch=report("holds"))
        self.charges = AsyncLane("ledger-charges-lane", _prepared(db, self._recorder.append_charges_statement),
                                 self._settle, _charge_collided, fail, on_batch=report("events"))
        self.loop = self.holds.loop

    async def admit(self, hold: Hold) -> int | None:
        limit: int | None = await self.holds.submit(hold)
        return limit

    async def settle(self, charge: Charge.TokensConsumed) -> bool:
        return bool(await self.charges.submit(charge))

    def abandon(self) -> None:
        for lane in (self.holds, self.charges):
            lane.abandon()

    async def aclose(self) -> None:
        for lane in (self.holds, self.charges):
            await lane.aclose()

    async def _settle(self, conn: Any, batch: list[Pending[Charge.TokensConsumed]]) -> None:
        """A batch of charges, as ``ts_append_charges`` on the writer thread would write it."""
        charges = [pending.job for pending in batch]
        stored = [self._app.mapper.to_stored_event(charge) for charge in charges]
        await self._recorder.append_charges_statement.run(
            conn, [self._recorder.charges_json(charges, stored), self._lock_timeout]
        )
        for pending in batch:
            pending.set_result(True)


def _prepared(db: Database, statement: Statement) -> Callable[[], Awaitable[Any]]:
    """A lane's ``connect``: a new connection with the lane's statement prepared on it."""

    async def connect() -> Any:
        conn = await db.aconnect()
        try:
            await statement.prepare(conn)
        except BaseException:
            conn.pgconn.finish()
            raise
        return conn

    return connect


async def _admit(conn: Any, batch: list[Pending[Hold]]) -> None:
    """A batch of holds, as the hold writer would admit it."""
    now = datetime.now(timezone.utc).isoformat().encode()
    resolve_admissions(batch, await ADMIT_STATEMENT.run(conn, [holds_json(batch), now]))


async def _holds_landed(conn: Any, batch: list[Pending[Hold]]) -> None:
    """Before a resend: the holds the lost attempt wrote are admitted. (Sent again, they
    would be decided against balances that already hold them, and could be refused
    while they stayed reserved.)"""
    cursor = await conn.execute(
        "SELECT request_id, amount FROM ts_holds WHERE request_id = ANY(%s)", ([p.job.facts.request_id for p in batch],)
    )
    written = {row["request_id"]: row["amount"] for row in await cursor.fetchall()}
    for pending in batch:
        amount = written.get(pending.job.facts.request_id)
        if amount is not None:
            pending.set_result(pending.job.limit_of(amount))


def _hold_collided(pending: Pending[Hold], resent: bool) -> None:
    # On a resend the collision is the first attempt, which landed: request ids are the
    # edge's own. Its chosen limit is unknown here; one token is within what it reserved.
    if resent:
        pending.set_result(pending.job.limit_of(pending.job.reserved(1)))
    else:
        pending.set_exception(Conflict("request id already admitted"))


def _charge_collided(pending: Pending[Charge.TokensConsumed], resent: bool) -> None:
    # Charged before: by someone else (False), or by this batch's first attempt (True).
    pending.set_result(resent)
