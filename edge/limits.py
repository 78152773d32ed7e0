"""Rate limits in the account API: ``{"rpm", "tpm", "maxConcurrency"}``, each a positive
integer or null (no limit). An admin sets a user's; an owner sets a key's, within what
the key's plan allows (``domain.rates``; admission enforces the tighter of each)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from domain.catalogue import Plan
from domain.rates import Limits
from edge.errors import Problem

_NAMES = {"rpm": "requests per minute", "tpm": "tokens per minute", "max_concurrency": "calls in flight"}


class LimitsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rpm: StrictInt | None = Field(default=None, gt=0, le=10_000_000)
    tpm: StrictInt | None = Field(default=None, gt=0, le=10_000_000_000)
    maxConcurrency: StrictInt | None = Field(default=None, gt=0, le=100_000)

    def limits(self) -> Limits:
        return Limits(self.rpm, self.tpm, self.maxConcurrency)


def within_plan(limits: Limits, plan: Plan | None) -> Limits:
    """A key's own limits, refused (400) where they exceed what its plan allows."""
    if plan is None:
        return limits
    for field in ("rpm", "tpm", "max_concurrency"):
        own, allowed = getattr(limits, field), getattr(plan.limits, field)
        if allowed is not None and own is not None and own > allowed:  # none of its own: the plan's applies
            raise Problem(400, "invalid_request", f"limits: plan {plan.name!r} allows at most {allowed} {_NAMES[field]}",
                          param="limits")
    return limits


def view(limits: Limits | None) -> dict[str, Any]:
    limits = limits or Limits()
    return {"rpm": limits.rpm, "tpm": limits.tpm, "maxConcurrency": limits.max_concurrency}
