"""Plans as entitlements, at the edge: which plan ids an admin may assign (those in the
configured catalogue), and which plans a user holds (read from their ``User``
aggregate, where ``PlansAssigned`` keeps them; the index tables do not carry them)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from domain.catalogue import Catalogue
from domain.users import User
from edge.errors import Problem
from ledger import Ledger

MAX_PLANS = 100


@dataclass(frozen=True, slots=True)
class Held:
    plans: tuple[int, ...]
    default: int | None


def known_plans(
    catalogue: Catalogue, plans: Sequence[int], default: int | None, field: str = "plans", default_field: str = "defaultPlan"
) -> tuple[int, ...]:
    """``plans`` once each, every one of them configured, ``default`` among them: else a 400."""
    chosen = tuple(dict.fromkeys(plans))
    if len(chosen) > MAX_PLANS:
        raise Problem(400, "invalid_request", f"{field}: at most {MAX_PLANS} plans", param=field)
    unknown = [plan for plan in chosen if plan not in catalogue.plans]
    if unknown:
        raise Problem(400, "invalid_request", f"{field}: no plan with id {unknown[0]}", param=field)
    if default is not None and default not in chosen:
        raise Problem(400, "invalid_request", f"{default_field}: {default} is not one of {field}", param=default_field)
    return chosen


def held_now(ledger: Ledger, user_id: UUID) -> Held:
    """What the user holds, from the ledger (blocking: the CLI, or a thread)."""
    try:
        user = ledger.get(user_id)
    except AggregateNotFoundError:
        return Held((), None)
    if not isinstance(user, User):
        return Held((), None)
    return Held(tuple(user.plans), user.default_plan)


async def held(ledger: Ledger, user_id: UUID) -> Held:
    return await asyncio.to_thread(held_now, ledger, user_id)
