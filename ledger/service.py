"""``Ledger``: the one object the rest of TokenSea uses to reach the ledger. It composes:

- ``writes`` (``ledger.writes``): holds and charges, through the group commit;
- ``commands`` (``ledger.command_runner``): users, keys and grants, one at a time;
- ``reads`` (``ledger.reads``): queries, on a pool of reader threads;
- ``maintenance`` (``ledger.maintenance``), in a serving process: heartbeat, recovery,
  the release of unsure holds, vacuum.

Every operation exists in a blocking form (the CLI, tests, maintenance) and an
``a``-prefixed awaitable form (the Sanic edge). Opening a ledger never changes the
database's schema: ``tokensea db upgrade`` does (``ledger.migrations``).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any, TypeVar
from uuid import UUID

from domain.charges import Charge
from ledger import commands
from ledger.admission import Hold
from ledger.application import open_application
from ledger.command_runner import CommandRunner
from ledger.database import Database
from ledger.log import EventLog
from ledger.maintenance import VACUUM_AFTER_HOLDS, Maintenance
from ledger.queries import Queries
from ledger.reads import Reader
from ledger.recovery import Recovery
from ledger.writes import OnBatch, Writes

T = TypeVar("T")


class Ledger:
    def __init__(
        self,
        db: Database,
        *,
        serving: bool = False,
        readers: int = 4,
        stale_after: float = 3.0,
        grace: float = 5.0,
        on_batch: OnBatch | None = None,
        vacuum_after_holds: int = VACUUM_AFTER_HOLDS,
    ) -> None:
        self.db = db
        self.instance_id = uuid.uuid4().hex
        self.app = open_application(db)
        self.log = EventLog(db, self.app)
        self.reads = Reader(db, readers)
        self.commands = CommandRunner(db, self.app)
        self.maintenance = Maintenance(
            db, Recovery(db, self.instance_id, stale_after=stale_after, grace=grace), self.settle,
            vacuum_after_holds=vacuum_after_holds,
        )
        self.writes = Writes(
            db, self.app, admitted=self.maintenance.admitted, unsure=self.maintenance.unsure, on_batch=on_batch
        )
        if serving:
            self.maintenance.start()

    @property
    def recovery(self) -> Recovery:
        return self.maintenance.recovery

    # -- holds and charges -----------------------------------------------------------

    def admit(self, hold: Hold) -> int | None:
        """Reserve ``hold`` or raise ``Refused``; the output limit the ledger chose when
        ``hold.output`` is set (``ledger.admission.OutputBound``), else None."""
        return self.writes.admit(hold)

    async def aadmit(self, hold: Hold) -> int | None:
        return await self.writes.aadmit(hold)

    def settle(self, charge: Charge.TokensConsumed) -> bool:
        """Record a request's charge; False if it had been recorded already."""
        return self.writes.settle(charge)

    async def asettle(self, charge: Charge.TokensConsumed) -> bool:
        return await self.writes.asettle(charge)

    # -- commands and reads ------------------------------------------------------------

    def run(self, command: commands.Command) -> Any:
        return self.commands.run(command)

    async def arun(self, command: commands.Command) -> Any:
        return await self.commands.arun(command)

    def read(self, query: Callable[[Queries], T]) -> T:
        return self.reads.read(query)

    async def aread(self, query: Callable[[Queries], T]) -> T:
        return await self.reads.aread(query)

    def get(self, aggregate_id: UUID) -> Any:
        return self.app.repository.get(aggregate_id)

    # -- closing -----------------------------------------------------------------------

    async def aclose(self) -> None:
        """``close`` for the event loop that served with the ledger: its writes finish first."""
        await self.writes.aclose()
        await asyncio.to_thread(self.close)

    def close(self) -> None:
        self.maintenance.stop()
        self.writes.close()
        self.commands.close()
        self.reads.close()
        self.app.close()
