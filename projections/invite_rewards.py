"""A policy that follows the ledger: an inviter is paid when their invitee is first charged.

Paying at registration let anyone farm rewards with throwaway accounts. Now the invitee's
first charged call (a ``TokensConsumed`` with a cost) triggers ``RewardInviter``, which
pays once per invitee and at most ``per_day`` rewards per inviter per day, whatever
processes run it at once (``ledger.commands``). It runs in the projection process, which
reads every event anyway; it remembers its position like a projection, and a replay after
a crash is harmless, since the command pays once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timezone
from typing import Any
from uuid import UUID

from domain.charges import Charge
from domain.money import Money
from ledger import Ledger, commands

log = logging.getLogger("tokensea.projections")


class InviteRewards:
    name = "invite_rewards"  # its position in ``proj_tracking``

    def __init__(self, ledger: Ledger, reward: Money, per_day: int) -> None:
        self._ledger = ledger
        self._reward = reward
        self._per_day = per_day
        self._decided: set[UUID] = set()  # invitees paid for, or users nobody invited

    def handle(self, events: Sequence[tuple[int, Any]]) -> None:
        first: dict[UUID, str] = {}  # a charged user, and the day of their first charge here
        for _, event in events:
            if isinstance(event, Charge.TokensConsumed) and event.cost.cents > 0 and event.user_id not in self._decided:
                first.setdefault(event.user_id, event.requested_at.astimezone(timezone.utc).date().isoformat())
        for user_id, day in first.items():
            paid = self._ledger.run(commands.RewardInviter(user_id, self._reward, self._per_day, day))
            if paid is None:
                log.info("invite reward for %s waits: the inviter's %d rewards of %s are taken", user_id,
                         self._per_day, day)
                continue
            self._decided.add(user_id)
