"""``Charge``: the one ``TokensConsumed`` event of a request.

Its id is ``uuid5(request id)``, so a request is charged at most once whatever retries
happen: a second charge for the same request id collides in the event store. The cost
is computed here from usage, unit prices and multiplier, never taken from the caller.
``Charge.record`` returns the event itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.ids import charge_id_for
from domain.money import Money
from domain.pricing import Price, cost
from domain.usage import TokenUsage


class RequestStatus(StrEnum):
    SUCCESS = "success"
    ERROR = "error"
    CLIENT_ABORTED = "client_aborted"
    INTERRUPTED = "interrupted"


class UsageSource(StrEnum):
    UPSTREAM = "upstream"
    ESTIMATED = "estimated"


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What the edge knows about a request before it reaches an upstream."""

    request_id: str
    user_id: UUID
    key_id: UUID
    key_name: str
    model: str
    provider: str
    endpoint: str
    stream: bool
    requested_at: datetime


class Charge(Aggregate):
    TOPIC = "tokensea.Charge"

    class Created(Aggregate.Created):  # unused; eventsourcing wants every event class named
        TOPIC = "tokensea.Charge.Created"

    class TokensConsumed(Aggregate.Created):
        TOPIC = "tokensea.TokensConsumed"
        request_id: str
        user_id: UUID
        key_id: UUID
        key_name: str
        model: str
        provider: str
        endpoint: str
        stream: bool
        requested_at: datetime
        input_tokens: int
        output_tokens: int
        cache_read_tokens: int
        cache_write_tokens: int
        price_input: Decimal
        price_output: Decimal
        price_cache_read: Decimal
        price_cache_write: Decimal
        multiplier: Decimal
        cost: Money
        reserved: Money
        latency_ms: int
        status: str
        usage_source: str
        error: str | None

    @event(TokensConsumed)
    def __init__(
        self,
        request_id: str,
        user_id: UUID,
        key_id: UUID,
        key_name: str,
        model: str,
        provider: str,
        endpoint: str,
        stream: bool,
        requested_at: datetime,
        input_tokens: int,
        output_tokens: int,
        cache_read_tokens: int,
        cache_write_tokens: int,
        price_input: Decimal,
        price_output: Decimal,
        price_cache_read: Decimal,
        price_cache_write: Decimal,
        multiplier: Decimal,
        cost: Money,
        reserved: Money,
        latency_ms: int,
        status: str,
        usage_source: str,
        error: str | None,
    ) -> None:
        self.request_id = request_id
        self.user_id = user_id
        self.key_id = key_id
        self.cost = cost
        self.status = status

    @classmethod
    def record(
        cls,
        facts: RequestFacts,
        usage: TokenUsage,
        price: Price,
        multiplier: Decimal,
        *,
        reserved: Money,
        latency_ms: int,
        status: RequestStatus,
        usage_source: UsageSource,
        error: str | None = None,
    ) -> Charge.TokensConsumed:
        """The ``TokensConsumed`` event that charges ``usage`` at ``price`` × ``multiplier``:
        the exact cost is computed here.

        The event is built directly rather than through a ``Charge`` instance: a charge
        has one event and nothing to decide, and this runs once per request on the hot
        path, where the aggregate's machinery cost more than everything else here.
        Replaying the event builds the aggregate as usual.
        """
        return cls.TokensConsumed(  # type: ignore[call-arg]  # fields come from eventsourcing's metaclass
            originator_id=charge_id_for(facts.request_id),
            originator_version=1,
            timestamp=cls.TokensConsumed.create_timestamp(),
            originator_topic=cls.TOPIC,
            request_id=facts.request_id,
            user_id=facts.user_id,
            key_id=facts.key_id,
            key_name=facts.key_name,
            model=facts.model,
            provider=facts.provider,
            endpoint=facts.endpoint,
            stream=facts.stream,
            requested_at=facts.requested_at,
            input_tokens=usage.input,
            output_tokens=usage.output,
            cache_read_tokens=usage.cache_read,
            cache_write_tokens=usage.cache_write,
            price_input=price.input,
            price_output=price.output,
            price_cache_read=price.cache_read,
            price_cache_write=price.cache_write,
            multiplier=multiplier,
            cost=cost(usage, price, multiplier),
            reserved=reserved,
            latency_ms=max(0, latency_ms),
            status=status.value,
            usage_source=usage_source.value,
            error=error,
        )
