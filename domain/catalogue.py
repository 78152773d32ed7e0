"""Providers, models and plans as plain values, and the rule for who may call what."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from domain.pricing import Price
from domain.rates import Limits


class Protocol(StrEnum):
    OPENAI = "openai"
    ANTHROPIC = "anthropic"


@dataclass(frozen=True, slots=True)
class Provider:
    name: str
    protocol: Protocol
    base_url: str
    api_key_env: str


@dataclass(frozen=True, slots=True)
class Route:
    """One provider serving a model, under its own name there, at its own price.
    ``structured_output``: the provider constrains an answer to a JSON schema itself
    (Anthropic's ``output_config.format``)."""

    provider: str
    upstream_model: str
    price: Price
    structured_output: bool = False


@dataclass(frozen=True, slots=True)
class Model:
    """A model alias clients send, and the routes that serve it, in order of preference."""

    id: str
    routes: tuple[Route, ...]
    max_output_tokens: int | None = None

    @property
    def primary(self) -> Route:
        return self.routes[0]

    @property
    def worst_price(self) -> Price:
        """Each kind at its dearest route: what admission must assume before routing."""
        return Price(
            input=max(r.price.input for r in self.routes),
            output=max(r.price.output for r in self.routes),
            cache_read=max(r.price.cache_read for r in self.routes),
            cache_write=max(r.price.cache_write for r in self.routes),
        )


@dataclass(frozen=True, slots=True)
class Plan:
    id: int
    name: str
    models: tuple[str, ...]
    price_multiplier: Decimal = Decimal(1)
    limits: Limits = field(default_factory=Limits)  # every key on the plan: its owner may set lower


@dataclass(frozen=True, slots=True)
class Catalogue:
    providers: dict[str, Provider] = field(default_factory=dict)
    models: dict[str, Model] = field(default_factory=dict)
    plans: dict[int, Plan] = field(default_factory=dict)


def model_allowed(model: str, key_models: Sequence[str] | None, plan: Plan | None) -> bool:
    """A key's own allow-list and its plan's both apply; an absent list allows all."""
    if key_models is not None and model not in key_models:
        return False
    return plan is None or model in plan.models
