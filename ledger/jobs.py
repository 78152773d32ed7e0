"""What the group commit's two kinds of job mean, whatever the backend.

A *hold* reserves a request's worst case (``ledger.admission``); a *charge* records its
``TokensConsumed``. A backend's driver (``ledger.postgres_writes``,
``ledger.sqlite_writes``) says how each is written and read back; these say what the
group commit makes of what it finds:

- a hold found written after a lost answer is admitted, with the output limit its
  stored amount pays for; a hold whose request id is taken is a conflict; a hold whose
  admission failed with the database is *unsure* (it may have landed, with nobody left
  to settle it: maintenance releases it once the database is back);
- a charge found written with the very bytes this call sent is its own (True); one
  whose request was charged by someone else is not (False).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from typing import Any
from uuid import UUID

from domain.charges import Charge
from ledger.admission import Hold
from ledger.database import to_decimal
from ledger.errors import Conflict
from ledger.group_commit import Driver, Pending


class HoldDriver(Driver[Hold]):
    lane = "holds"

    def __init__(self, *, admitted: Callable[[int], None], unsure: Callable[[list[str]], None]) -> None:
        self._admitted = admitted  # counts holds, for the vacuum of the tables they churn
        self._unsure = unsure

    @abstractmethod
    async def held(self, conn: Any, request_ids: list[str]) -> dict[str, Any]:
        """The stored amount of each of ``request_ids`` that holds a reservation."""

    async def landed(self, conn: Any, batch: list[Pending[Hold]]) -> None:
        if not batch:
            return
        held = await self.held(conn, [pending.job.facts.request_id for pending in batch])
        for pending in batch:
            amount = held.get(pending.job.facts.request_id)
            if amount is not None:
                pending.set_result(pending.job.limit_of(to_decimal(amount)))

    def collided(self, pending: Pending[Hold]) -> None:
        pending.set_exception(Conflict("request id already admitted"))

    def failed(self, error: BaseException, batch: list[Pending[Hold]]) -> None:
        self._unsure([pending.job.facts.request_id for pending in batch])


class ChargeDriver(Driver[Charge.TokensConsumed]):
    lane = "events"

    def __init__(self, app: Any) -> None:
        self._mapper = app.mapper

    @abstractmethod
    async def stored(self, conn: Any, ids: list[UUID]) -> dict[UUID, bytes]:
        """The stored state of each charge event found among ``ids``."""

    async def landed(self, conn: Any, batch: list[Pending[Charge.TokensConsumed]]) -> None:
        if not batch:
            return
        found = await self.stored(conn, [pending.job.originator_id for pending in batch])
        for pending in batch:
            state = found.get(pending.job.originator_id)
            if state is not None:
                pending.set_result(state == self._mapper.to_stored_event(pending.job).state)

    def collided(self, pending: Pending[Charge.TokensConsumed]) -> None:
        pending.set_result(False)


