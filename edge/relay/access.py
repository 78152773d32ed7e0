"""Who may call which model, written once for every model route.

A key may call a model if the key is usable (not disabled, deleted or expired, its
user active: else 403) and the model is on the key's own allow-list and on its plan's
(an absent list allows all). The ledger re-checks the key's and user's state under its
locks at admission; this is the early answer, in the client's protocol.
"""

from __future__ import annotations

from domain.catalogue import Catalogue, Plan, model_allowed
from edge.errors import Problem
from edge.relay.keys import Caller


def plan_of(caller: Caller, catalogue: Catalogue) -> Plan | None:
    return catalogue.plans.get(caller.plan_id) if caller.plan_id is not None else None


def usable(caller: Caller) -> None:
    """403 if the key may make no call right now."""
    refusal = caller.refusal()
    if refusal is not None:
        raise refusal


def may_use(caller: Caller, model_id: str, catalogue: Catalogue) -> bool:
    return model_allowed(model_id, caller.models, plan_of(caller, catalogue))


def require(caller: Caller, model_id: str, catalogue: Catalogue) -> Plan | None:
    """The caller's plan, or a 403 if the key may not call ``model_id`` now."""
    usable(caller)
    plan = plan_of(caller, catalogue)
    if not model_allowed(model_id, caller.models, plan):
        raise Problem(403, "model_not_allowed", f"this API key may not use the model '{model_id}'")
    return plan
