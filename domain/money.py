"""Exact money: a count of cents as a ``Decimal``.

Floats are refused at every entry point, because a binary float cannot hold 0.1 cent
exactly. Arithmetic runs in ``EXACT``, a decimal context that traps ``Inexact`` and
``Rounded``: if a result would need rounding, it raises instead of losing a digit.
"""

from __future__ import annotations

import decimal
from decimal import Decimal
from typing import Final

from domain.errors import InvalidAmount

EXACT: Final = decimal.Context(
    prec=60,
    rounding=decimal.ROUND_HALF_EVEN,
    traps=[decimal.Inexact, decimal.Rounded, decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)

# Ten billion dollars: far beyond any real quota, small enough to catch unit mistakes.
MAX_CENTS: Final = Decimal("1000000000000")


def to_decimal(value: object) -> Decimal:
    """Read ``value`` (a ``Decimal``, an ``int`` or a string of digits) exactly."""
    if isinstance(value, bool | float):
        raise InvalidAmount(f"amounts must be exact decimals, not {type(value).__name__}")
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, str):
        text = value.strip()
        if not text or len(text) > 64:
            raise InvalidAmount(f"not a decimal amount: {value[:64]!r}")
        try:
            number = Decimal(text)
        except decimal.InvalidOperation:
            raise InvalidAmount(f"not a decimal amount: {value!r}") from None
    else:
        raise InvalidAmount(f"amounts must be exact decimals, not {type(value).__name__}")
    if not number.is_finite():
        raise InvalidAmount(f"amounts must be finite, got {number}")
    return number


def format_decimal(value: Decimal) -> str:
    """Plain notation without trailing zeros: 2345, 0.0315, never 2.345E+3."""
    if value == 0:
        return "0"
    text = format(value.normalize(EXACT), "f")
    return text


class Money:
    """An exact amount of cents. Immutable; compares and adds only with ``Money``."""

    __slots__ = ("_cents",)
    _cents: Decimal

    def __init__(self, cents: object = 0) -> None:
        number = to_decimal(cents)
        if abs(number) > MAX_CENTS:
            raise InvalidAmount(f"amount out of range: {format_decimal(number)} cents")
        object.__setattr__(self, "_cents", number)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Money is immutable")

    def __reduce__(self) -> tuple[type[Money], tuple[str]]:
        return (Money, (str(self.cents),))

    @classmethod
    def parse(cls, value: object, *, allow_zero: bool = True) -> Money:
        """Read an amount given by a user: non-negative, exact, never a float."""
        money = cls(value)
        if money.cents < 0:
            raise InvalidAmount("amounts cannot be negative")
        if not allow_zero and money.cents == 0:
            raise InvalidAmount("amount must be greater than zero")
        return money

    @property
    def cents(self) -> Decimal:
        return self._cents

    def __add__(self, other: Money) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        return Money(EXACT.add(self.cents, other.cents))

    def __sub__(self, other: Money) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        return Money(EXACT.subtract(self.cents, other.cents))

    def __neg__(self) -> Money:
        return Money(EXACT.minus(self.cents))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        return self.cents == other.cents

    def __lt__(self, other: Money) -> bool:
        return self.cents < other.cents

    def __le__(self, other: Money) -> bool:
        return self.cents <= other.cents

    def __gt__(self, other: Money) -> bool:
        return self.cents > other.cents

    def __ge__(self, other: Money) -> bool:
        return self.cents >= other.cents

    def __hash__(self) -> int:
        return hash(self.cents)

    def __bool__(self) -> bool:
        return self.cents != 0

    def __str__(self) -> str:
        return format_decimal(self.cents)

    def __repr__(self) -> str:
        return f"Money('{self}')"

    @classmethod
    def sum(cls, amounts: list[Money]) -> Money:
        total = Decimal(0)
        for amount in amounts:
            total = EXACT.add(total, amount.cents)
        return cls(total)

