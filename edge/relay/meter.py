"""Admission and settlement of one model call.

``admit`` checks the caller may use the model, bounds the call's cost (the prompt's
size plus the output limit at the model's dearest prices, times the plan multiplier)
and reserves that bound in the ledger. A client's output limit is lowered to the
model's ``max_output_tokens``; a call without one leaves the limit to the ledger, which
picks the largest (up to the model's maximum, else ``DEFAULT_OUTPUT_LIMIT``) that the
user's and the key's remaining quota can pay, under the same locks as the hold, so
concurrent calls can never overdraw. The limit granted is what the provider is sent.

``settle`` records the actual charge exactly once; it runs as a task the client's connection cannot cancel, so a client that disconnects
mid-answer is still billed for what was delivered. If the ledger cannot take the
charge, it keeps retrying in the background until it can (the hold stays reserved
meanwhile; a process that dies first leaves it to recovery). A client that leaves while
its hold is being written has the hold released as soon as it exists.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from decimal import Decimal

from domain.catalogue import Model, Route
from domain.charges import Charge, RequestFacts, RequestStatus, UsageSource
from domain.money import EXACT, Money
from domain.pricing import PER_MILLION, worst_case_cost
from domain.rates import Limits
from domain.usage import TokenUsage
from edge import metrics
from edge.relay import access
from edge.relay.keys import Caller
from edge.services import Services
from ledger import Hold, LedgerUnavailable
from ledger.admission import OutputBound

log = logging.getLogger("tokensea.billing")

RETRY_SECONDS = (0.2, 0.5, 1, 2, 5)
# The output limit of a call without one, on a model configured without
# max_output_tokens: every current model of both providers can produce this much, so a
# provider never refuses it as too large.
DEFAULT_OUTPUT_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class OutputLimit:
    """What the client asked for: its output limit (None: none sent), and how many
    choices may each use all of it (``n``)."""

    requested: int | None = None
    choices: int = 1


@dataclass
class Meter:
    svc: Services
    facts: RequestFacts
    hold: Money  # the whole reservation, the output limit's share included
    multiplier: Decimal
    limit: int | None = None  # the output limit granted (None: the call makes no output)
    started: float = field(default_factory=time.perf_counter)
    settled: bool = False

    def charge(
        self, route: Route | None, usage: TokenUsage, status: RequestStatus, source: UsageSource, error: str | None
    ) -> Charge.TokensConsumed:
        if route is None:  # nothing was routed: the primary route's terms, for the record
            route = self.svc.settings.catalogue.models[self.facts.model].primary
        facts = replace(self.facts, provider=route.provider)
        charge = Charge.record(
            facts, usage, route.price, self.multiplier,
            reserved=self.hold,
            latency_ms=int((time.perf_counter() - self.started) * 1000),
            status=status,
            usage_source=source,
            error=error,
        )
        if charge.cost > self.hold:
            log.warning(
                "request %s cost %s cents, above its hold of %s: the upstream reported more than the bound",
                self.facts.request_id, charge.cost, self.hold,
            )
        return charge

    def settle(
        self,
        route: Route | None,
        usage: TokenUsage,
        status: RequestStatus,
        source: UsageSource,
        error: str | None = None,
        *,
        if_unavailable: tuple[TokenUsage, RequestStatus, str] | None = None,
    ) -> asyncio.Future[bool]:
        """Record the charge in a task that no cancellation reaches.

        The returned future tells whether the first attempt made it durable (True, or
        False if the request had been charged already) or raises ``LedgerUnavailable``.
        In that case the task keeps retrying, with ``if_unavailable`` as the charge if
        given: the caller then withholds the answer, so the record says so.
        """
        self.settled = True
        first: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        charge = self.charge(route, usage, status, source, error)
        fallback = None if if_unavailable is None else self.charge(route, *if_unavailable[:2], source, if_unavailable[2])
        self.svc.spawn(self._record(charge, fallback, first))
        return first

    async def _record(
        self, charge: Charge.TokensConsumed, fallback: Charge.TokensConsumed | None, first: asyncio.Future[bool]
    ) -> None:
        # Resending a charge after an ambiguous failure is safe: the ledger sees a
        # duplicate request id and records nothing twice.
        try:
            recorded = await self.svc.ledger.asettle(charge)
            if recorded:
                metrics.billed(charge)
        except Exception as exc:  # whatever failed, the caller must hear it and the charge be retried
            if not isinstance(exc, LedgerUnavailable):
                log.exception("settling %s failed", self.facts.request_id)
                exc = LedgerUnavailable(f"the charge could not be recorded ({type(exc).__name__})")
            if not first.done():
                first.set_exception(exc)
            first.exception()  # retrieved: an unawaited failure is not an error here
        else:
            if not first.done():
                first.set_result(recorded)
            return
        log.warning("ledger unavailable while settling %s; retrying until it returns", self.facts.request_id)
        if fallback is not None:
            charge = fallback
        attempt = 0
        while True:
            await asyncio.sleep(RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)])
            attempt += 1
            try:
                if not await self.svc.ledger.asettle(charge) and fallback is not None:
                    # The first attempt had landed as the database failed: it stands, though
                    # the client was told the answer was withheld. Rare; worth knowing.
                    log.warning("request %s was charged before the database failed, and its answer withheld",
                                self.facts.request_id)
                return
            except LedgerUnavailable:
                continue
            except Exception:  # keep trying: the hold stays reserved until this lands
                log.exception("settling %s failed again", self.facts.request_id)


async def admit(
    svc: Services,
    caller: Caller,
    model: Model,
    *,
    request_id: str,
    endpoint: str,
    stream: bool,
    prompt_tokens_bound: int,
    output: OutputLimit | None,
) -> Meter:
    """Check access (403) and reserve the worst case (402); the meter settles the call.
    ``output`` None: the call makes no output (embeddings)."""
    plan = access.require(caller, model.id, svc.settings.catalogue)
    multiplier = plan.price_multiplier if plan is not None else Decimal(1)
    price = model.worst_price
    facts = RequestFacts(
        request_id=request_id,
        user_id=caller.user_id,
        key_id=caller.key_id,
        key_name=caller.key_name,
        model=model.id,
        provider=model.primary.provider,
        endpoint=endpoint,
        stream=stream,
        requested_at=datetime.now(timezone.utc),
    )
    limit: int | None = None
    # The key's plan's rate limits travel with the hold: admission applies them with the
    # key's own and the user's. Tokens count at the bound (the output too, when it is fixed).
    plan_limits = plan.limits if plan is not None else Limits()
    instance = svc.ledger.instance_id
    prompt_cost = worst_case_cost(prompt_tokens_bound, 0, price, multiplier)
    if output is None:  # no output at all (embeddings)
        hold = Hold(facts, prompt_cost, instance, tokens=prompt_tokens_bound, plan_limits=plan_limits)
    elif output.requested is not None:
        limit = min(output.requested, model.max_output_tokens or output.requested)
        worst = worst_case_cost(prompt_tokens_bound, limit * output.choices, price, multiplier)
        hold = Hold(facts, worst, instance, tokens=prompt_tokens_bound + limit * output.choices, plan_limits=plan_limits)
    else:  # the ledger picks the limit: the prompt's bound fixed, each token of limit at per_token
        per_token = EXACT.divide(EXACT.multiply(EXACT.multiply(price.output, multiplier), Decimal(output.choices)),
                                 PER_MILLION)
        bound = OutputBound(per_token, model.max_output_tokens or DEFAULT_OUTPUT_LIMIT)
        hold = Hold(facts, prompt_cost, instance, bound, tokens=prompt_tokens_bound, plan_limits=plan_limits)
    meter = Meter(svc, facts, hold.amount, multiplier)
    admission = asyncio.ensure_future(svc.ledger.aadmit(hold))
    try:
        chosen = await asyncio.shield(admission)
    except asyncio.CancelledError:
        # The client left while its hold was being written: release the hold once it is.
        admission.add_done_callback(lambda _: _release_if_admitted(meter, hold, admission))
        raise
    meter.hold = Money(hold.reserved(chosen))
    meter.limit = chosen if chosen is not None else limit
    return meter


def _release_if_admitted(meter: Meter, hold: Hold, admission: asyncio.Future[int | None]) -> None:
    if not admission.cancelled() and admission.exception() is None:
        meter.hold = Money(hold.reserved(admission.result()))
        meter.settle(None, TokenUsage(), RequestStatus.CLIENT_ABORTED, UsageSource.ESTIMATED, "the client disconnected")
