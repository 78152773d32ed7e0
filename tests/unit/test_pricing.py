from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import InvalidPrice, InvalidUsage
from domain.money import Money
from domain.pricing import Price, cost, worst_case_cost
from domain.usage import TokenUsage

SONNET = Price.of("300", "1500", "30", "375")


def test_cost_prices_each_kind_once() -> None:
    usage = TokenUsage(input=1000, output=500, cache_read=2000, cache_write=100)
    expected = (Decimal(1000) * 300 + Decimal(500) * 1500 + Decimal(2000) * 30 + Decimal(100) * 375) / 1_000_000
    assert cost(usage, SONNET) == Money(expected)
    assert str(cost(usage, SONNET)) == "1.1475"


def test_multiplier_applies_to_the_whole_cost() -> None:
    usage = TokenUsage(input=1_000_000)
    assert cost(usage, SONNET, Decimal("0.8")) == Money(240)


def test_one_token_at_a_tiny_price_is_not_rounded_away() -> None:
    assert cost(TokenUsage(output=1), Price.of("0.1", "0.1")).cents == Decimal("0.0000001")


@given(
    st.integers(0, 10**7), st.integers(0, 10**7), st.integers(0, 10**7), st.integers(0, 10**7),
)
def test_cost_is_additive(a: int, b: int, c: int, d: int) -> None:
    whole = cost(TokenUsage(input=a, output=b, cache_read=c, cache_write=d), SONNET)
    parts = [
        cost(TokenUsage(input=a), SONNET),
        cost(TokenUsage(output=b), SONNET),
        cost(TokenUsage(cache_read=c), SONNET),
        cost(TokenUsage(cache_write=d), SONNET),
    ]
    assert whole == Money.sum(parts)


@given(st.integers(0, 200_000), st.integers(0, 64_000), st.integers(0, 200_000), st.integers(0, 64_000))
def test_worst_case_bounds_any_usage_within_limits(prompt: int, output: int, used_prompt: int, used_output: int) -> None:
    used_prompt, used_output = min(used_prompt, prompt), min(used_output, output)
    bound = worst_case_cost(prompt, output, SONNET)
    for split in (TokenUsage(input=used_prompt, output=used_output),
                  TokenUsage(cache_write=used_prompt, output=used_output),
                  TokenUsage(cache_read=used_prompt, output=used_output)):
        assert cost(split, SONNET) <= bound


def test_missing_cache_prices_default_to_input() -> None:
    price = Price.of("200", "800")
    assert price.cache_read == price.cache_write == Decimal(200)


@pytest.mark.parametrize("bad", [0.5, "-1", "NaN", None, "x"])
def test_bad_prices_are_refused(bad: object) -> None:
    with pytest.raises(InvalidPrice):
        Price.of(bad, "1")


@pytest.mark.parametrize(
    "counts", [{"input": -1}, {"input": 1.5}, {"reasoning": 3}, {"output": True}, {"input": "10"}]
)
def test_bad_usage_is_refused(counts: dict[str, object]) -> None:
    with pytest.raises(InvalidUsage):
        TokenUsage.from_mapping(counts)
