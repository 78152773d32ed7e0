"""Prices and the exact cost of a request.

A ``Price`` is cents per million tokens for each token kind. The cost of a request is
``Σ tokens × unit price / 1,000,000`` over the kinds, times the plan's multiplier,
computed in the exact decimal context: no float, no rounding per request.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from domain.errors import InvalidAmount, InvalidPrice
from domain.money import EXACT, Money, to_decimal
from domain.usage import TokenUsage

PER_MILLION = Decimal(1_000_000)


def _rate(value: object, what: str) -> Decimal:
    try:
        rate = to_decimal(value)
    except InvalidAmount as exc:
        raise InvalidPrice(f"{what}: {exc}") from None
    if rate < 0:
        raise InvalidPrice(f"{what} cannot be negative")
    return rate


@dataclass(frozen=True, slots=True)
class Price:
    """Cents per million tokens, by kind."""

    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write: Decimal

    @classmethod
    def of(
        cls,
        input: object,
        output: object,
        cache_read: object | None = None,
        cache_write: object | None = None,
    ) -> Price:
        """Read a price from config values; a missing cache price is the input price."""
        unit_in = _rate(input, "input price")
        return cls(
            input=unit_in,
            output=_rate(output, "output price"),
            cache_read=unit_in if cache_read is None else _rate(cache_read, "cache read price"),
            cache_write=unit_in if cache_write is None else _rate(cache_write, "cache write price"),
        )

    @property
    def max_prompt_rate(self) -> Decimal:
        """The dearest price a prompt token can be billed at."""
        return max(self.input, self.cache_read, self.cache_write)


def multiplier_of(value: object) -> Decimal:
    return _rate(value, "price multiplier")


def cost(usage: TokenUsage, price: Price, multiplier: Decimal = Decimal(1)) -> Money:
    """The exact cost in cents of ``usage`` at ``price``, times ``multiplier``."""
    total = Decimal(0)
    for tokens, rate in (
        (usage.input, price.input),
        (usage.output, price.output),
        (usage.cache_read, price.cache_read),
        (usage.cache_write, price.cache_write),
    ):
        if tokens:
            total = EXACT.add(total, EXACT.multiply(Decimal(tokens), rate))
    total = EXACT.multiply(total, multiplier)
    return Money(EXACT.divide(total, PER_MILLION))


def worst_case_cost(
    prompt_tokens_bound: int, max_output_tokens: int, price: Price, multiplier: Decimal = Decimal(1)
) -> Money:
    """A safe upper bound of a request's cost before it runs.

    Every prompt token is priced at the dearest prompt rate (a cache write costs more
    than plain input), and the output at ``max_output_tokens``.
    """
    if prompt_tokens_bound < 0 or max_output_tokens < 0:
        raise InvalidPrice("token bounds cannot be negative")
    total = EXACT.add(
        EXACT.multiply(Decimal(prompt_tokens_bound), price.max_prompt_rate),
        EXACT.multiply(Decimal(max_output_tokens), price.output),
    )
    return Money(EXACT.divide(EXACT.multiply(total, multiplier), PER_MILLION))
