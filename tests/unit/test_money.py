from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import InvalidAmount
from domain.money import Money, ScientificNumber, format_decimal, parse_amount


@pytest.mark.parametrize("value", ["2345", 2345, Decimal("2345"), "2345.000", Decimal("2345.000000000000")])
def test_reads_exact_amounts(value: object) -> None:
    assert Money.parse(value).cents == Decimal(2345)


@pytest.mark.parametrize(
    "value",
    [
        "99999999999.99999999999999999999999999999999999999999999999999",  # 61 digits: Inexact in admission
        "1e999999999",  # a billion digits to print
        "1e-400",  # 400 places: Inexact in any sum
        "1E3",
        "1_000",
        "1,000",
        "\u0665",  # Arabic-Indic five, which Decimal reads
        "\uff15",  # a fullwidth five
        " 5 ",
        "5\n",
        "+5",
        "-5",
        "5.",
        ".5",
        "0x10",
        "1234567890123456",  # 16 integer digits
        "0.1234567890123",  # 13 places
        "",
        Decimal("-0"),
        Decimal("0.0000000000001"),
        Decimal("1234567890123456"),
        ScientificNumber("1e2"),  # a JSON number written with an exponent
        10**15,
        -1,
    ],
)
def test_refuses_anything_but_plain_ascii_decimals(value: object) -> None:
    with pytest.raises(InvalidAmount):
        parse_amount(value)


@pytest.mark.parametrize(
    ("value", "cents"),
    [("123456789012345", "123456789012345"), ("0.123456789012", "0.123456789012"), ("007", "7"),
     (Decimal("1.50"), "1.50"), (10**15 - 1, "999999999999999")],
)
def test_the_largest_plain_shapes_are_read(value: object, cents: str) -> None:
    assert parse_amount(value) == Decimal(cents)


@pytest.mark.parametrize("value", [0.1, 1.0, True, None, [], "1e999999", "NaN", "inf", "-Infinity", "abc", ""])
def test_refuses_floats_and_non_numbers(value: object) -> None:
    with pytest.raises(InvalidAmount):
        Money.parse(value)


def test_refuses_negative_and_optionally_zero() -> None:
    with pytest.raises(InvalidAmount):
        Money.parse("-1")
    with pytest.raises(InvalidAmount):
        Money.parse("0", allow_zero=False)
    assert Money.parse("0").cents == 0


def test_refuses_absurd_amounts() -> None:
    with pytest.raises(InvalidAmount):
        Money.parse("1" + "0" * 20)


@pytest.mark.parametrize(
    ("value", "text"),
    [("2345", "2345"), ("2300", "2300"), ("0.0315", "0.0315"), ("0.10", "0.1"), ("0", "0"), ("1E+3", "1000")],
)
def test_formats_plainly(value: str, text: str) -> None:
    assert str(Money(value)) == text
    assert format_decimal(Decimal(value)) == text


@given(st.lists(st.decimals(min_value=0, max_value=10**6, places=7, allow_nan=False), max_size=50))
def test_sums_are_exact(amounts: list[Decimal]) -> None:
    total = Money.sum([Money(a) for a in amounts])
    assert total.cents == sum(amounts, Decimal(0))


def test_is_immutable_and_compares_by_value() -> None:
    money = Money("1.50")
    with pytest.raises(AttributeError):
        money.cents = Decimal(2)  # type: ignore[misc]
    assert money == Money("1.5")
    assert money < Money(2)
    assert money + Money("0.5") == Money(2)
    assert money - Money(2) == Money("-0.5")


def test_survives_pickling_to_worker_processes() -> None:
    import pickle

    assert pickle.loads(pickle.dumps(Money("0.0315"))) == Money("0.0315")
