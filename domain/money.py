"""Exact money: a count of cents as a ``Decimal``.

Floats are refused at every entry point, because a binary float cannot hold 0.1 cent
exactly. Arithmetic runs in ``EXACT``, a decimal context that traps ``Inexact`` and
``Rounded``: if a result would need rounding, it raises instead of losing a digit.

What people and programs send (``parse_amount``, ``Money.parse``) is held to a plain
shape: ASCII digits, at most 15 before the point and 12 after, no sign, exponent,
spaces or separators. ``Decimal`` itself reads ``"1e999999999"``, ``"1_000"``, Arabic-
Indic digits and ``" 5 "``; an amount with 61 significant digits made the exact context
raise inside admission, and one with a huge exponent took minutes to print. Bounded
digits keep every sum of amounts far inside ``EXACT``'s precision.
"""

from __future__ import annotations

import decimal
import re
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

MAX_INTEGER_DIGITS: Final = 15
MAX_DECIMAL_PLACES: Final = 12
# ``[0-9]``, not ``\d``: ``\d`` matches every script's digits, ``Decimal`` reads them all.
_PLAIN: Final = re.compile(rf"[0-9]{{1,{MAX_INTEGER_DIGITS}}}(?:\.[0-9]{{1,{MAX_DECIMAL_PLACES}}})?")
_LIMIT: Final = Decimal(10) ** MAX_INTEGER_DIGITS
_SHAPE: Final = (
    f"a plain decimal of at most {MAX_INTEGER_DIGITS} digits before the point and "
    f"{MAX_DECIMAL_PLACES} after it, e.g. \"1500\" or \"0.25\""
)


class ScientificNumber(Decimal):
    """A JSON number written with an exponent (``1e3``): JSON readers that keep numbers
    exact mark them with this type, so that ``parse_amount`` can refuse the notation."""

    __slots__ = ()


def parse_amount(value: object) -> Decimal:
    """Read an amount sent by a person or a program: a plain ASCII decimal string, an
    ``int`` or an exact ``Decimal`` (a JSON number), never a float. No sign, exponent,
    spaces, separators or non-ASCII digits; at most 15 integer digits and 12 places."""
    if isinstance(value, bool | float):
        raise InvalidAmount(f"amounts must be exact decimals, not {type(value).__name__}: write {_SHAPE}")
    if isinstance(value, str):
        if value.startswith(("-", "+")):
            raise InvalidAmount("amounts cannot be negative or carry a sign")
        if len(value) > 40 or not _PLAIN.fullmatch(value):
            shown = value if len(value) <= 40 else value[:40] + "…"
            raise InvalidAmount(f"{shown!r} is not an amount: write {_SHAPE}")
        return Decimal(value)
    if isinstance(value, int):
        number = Decimal(value) if -_LIMIT < value < _LIMIT else None
        if number is None:
            raise InvalidAmount(f"too many digits: write {_SHAPE}")
    elif isinstance(value, ScientificNumber):
        raise InvalidAmount(f"numbers with an exponent are not amounts: write {_SHAPE}")
    elif isinstance(value, Decimal):
        number = value
        if not number.is_finite():
            raise InvalidAmount(f"amounts must be finite: write {_SHAPE}")
        exponent = number.as_tuple().exponent
        assert isinstance(exponent, int)  # finite
        if exponent < -MAX_DECIMAL_PLACES or abs(number) >= _LIMIT:
            raise InvalidAmount(f"too many digits: write {_SHAPE}")
    else:
        raise InvalidAmount(f"amounts must be exact decimals, not {type(value).__name__}: write {_SHAPE}")
    if number.is_signed():
        raise InvalidAmount("amounts cannot be negative or carry a sign")
    return number


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
        """Read an amount given by a user (``parse_amount``): non-negative, exact, in range."""
        money = cls(parse_amount(value))
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

