"""Settings, read once at start-up: a TOML file for policy, the environment for secrets
and the database's address. Nothing else in TokenSea reads the environment.

The file is ``--config``, else ``TOKENSEA_CONFIG``, else ``./tokensea.toml`` if it
exists, else built-in defaults. Secrets never come from the file: provider keys are
read from the environment variables the providers name, the JWT secret from
``TOKENSEA_JWT_SECRET``, the token that guards ``/metrics`` from ``TOKENSEA_METRICS_TOKEN``. Every key is validated; a bad file stops start-up with a
message that names the key.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from domain.catalogue import Catalogue, Model, Plan, Protocol, Provider, Route
from domain.errors import DomainError
from domain.money import Money, format_decimal, parse_amount
from domain.pricing import Price, multiplier_of
from domain.rates import Limits
from edge import catalogue as builtin
from ledger.database import DEFAULT_URL
from projections.scheduler import Schedule


class SettingsError(ValueError):
    """The configuration cannot be used; the message says which key and why."""


def _exact(value: Any) -> str:
    if isinstance(value, float):
        raise ValueError("write amounts as strings or integers (e.g. \"0.5\"), not floats")
    return format_decimal(parse_amount(value))  # the same plain shape as amounts sent to the API


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProviderConfig(_Strict):
    name: str = Field(min_length=1, max_length=64)
    protocol: Literal["openai", "anthropic"]
    base_url: str = Field(pattern=r"^https?://")
    api_key_env: str = Field(min_length=1)


class ModelConfig(_Strict):
    id: str = Field(min_length=1, max_length=128)
    provider: str
    upstream_model: str | None = None
    input: Any
    output: Any
    cache_read: Any = None
    cache_write: Any = None
    max_output_tokens: int | None = Field(default=None, gt=0)
    structured_output: bool = False  # the provider takes Anthropic's output_config.format

    @field_validator("input", "output", "cache_read", "cache_write", mode="before")
    @classmethod
    def _no_floats(cls, value: Any) -> Any:
        return None if value is None else _exact(value)


class PlanConfig(_Strict):
    id: int
    name: str
    models: list[str]
    price_multiplier: Any = "1"
    rpm: int | None = Field(default=None, gt=0, le=10_000_000)  # requests per minute, per key
    tpm: int | None = Field(default=None, gt=0, le=10_000_000_000)  # tokens per minute, per key
    max_concurrency: int | None = Field(default=None, gt=0, le=100_000)  # calls in flight, per key

    @field_validator("price_multiplier", mode="before")
    @classmethod
    def _no_floats(cls, value: Any) -> Any:
        return _exact(value)


class UpstreamConfig(_Strict):
    connect_timeout: float = Field(default=10.0, gt=0)
    first_byte_timeout: float = Field(default=600.0, gt=0)
    idle_timeout: float = Field(default=300.0, gt=0)
    max_connections: int = Field(default=1000, gt=0)


class ServerConfig(_Strict):
    max_body_mb: int = Field(default=32, gt=0, le=1024)
    access_log: bool = True
    console: bool = True  # the web console at / (false for API-only deployments)
    cors_origins: list[str] = []
    proxies_count: int = Field(default=0, ge=0)
    login_max_failures: int = Field(default=5, gt=0)
    login_max_failures_per_address: int = Field(default=50, gt=0)
    login_window_seconds: int = Field(default=300, gt=0)
    login_max_delay_seconds: float = Field(default=30.0, gt=0, le=300)
    register_max_per_address: int = Field(default=20, gt=0)
    register_window_seconds: int = Field(default=3600, gt=0)


class ProjectionsConfig(_Strict):
    run_with_serve: bool = True
    rebuild_cron: str = "0 3 * * *"  # rebuild from the latest checkpoint, then checkpoint
    checkpoint_cron: str = "0 3 * * *"  # the same as rebuild_cron: one job, rebuild then checkpoint
    log_retention_days: int | None = Field(default=None, ge=1, le=36_500)  # None: keep every request-log row
    max_lag_seconds: float = Field(default=5.0, gt=0)

    @field_validator("rebuild_cron", "checkpoint_cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(value, timezone="UTC")
        except ValueError as exc:
            raise ValueError(f"not a crontab expression (minute hour day month weekday): {exc}") from None
        return value

    def schedule(self) -> Schedule:
        return Schedule(self.rebuild_cron, self.checkpoint_cron, self.log_retention_days)


class LedgerConfig(_Strict):
    # A process that misses heartbeats this long is suspect; after the grace (timed by
    # the observer) its holds are settled as interrupted.
    recovery_stale_seconds: float = Field(default=3.0, gt=0)
    recovery_grace_seconds: float = Field(default=5.0, gt=0)


class FileConfig(_Strict):
    signup_quota: Any = "0"
    invite_reward: Any = "100"
    invite_max_rewards_per_day: int = Field(default=10, ge=0, le=10_000)
    jwt_ttl_days: int = Field(default=7, gt=0, le=365)
    providers: list[ProviderConfig] = []
    models: list[ModelConfig] = []
    plans: list[PlanConfig] = []
    upstream: UpstreamConfig = UpstreamConfig()
    server: ServerConfig = ServerConfig()
    projections: ProjectionsConfig = ProjectionsConfig()
    ledger: LedgerConfig = LedgerConfig()

    @field_validator("signup_quota", "invite_reward", mode="before")
    @classmethod
    def _no_floats(cls, value: Any) -> Any:
        return _exact(value)


@dataclass(frozen=True)
class Settings:
    database_url: str
    signup_quota: Money
    invite_reward: Money
    jwt_ttl_days: int
    invite_max_rewards_per_day: int
    catalogue: Catalogue
    upstream: UpstreamConfig
    server: ServerConfig
    projections: ProjectionsConfig
    ledger: LedgerConfig = field(default_factory=LedgerConfig)
    source: str = "built-in defaults"
    provider_keys: dict[str, str] = field(default_factory=dict, repr=False)
    jwt_secret: str = field(default="", repr=False)  # TOKENSEA_JWT_SECRET; empty: one is kept in the database
    metrics_token: str = field(default="", repr=False)  # TOKENSEA_METRICS_TOKEN: guards /metrics

    @property
    def max_body_bytes(self) -> int:
        return self.server.max_body_mb * 1024 * 1024


def config_path(explicit: str | None = None) -> Path | None:
    chosen = explicit or os.environ.get("TOKENSEA_CONFIG")
    if chosen:
        path = Path(chosen)
        if not path.is_file():
            raise SettingsError(f"config file not found: {path}")
        return path
    default = Path("tokensea.toml")
    return default if default.is_file() else None


def load(explicit: str | None = None, *, database_url: str | None = None) -> Settings:
    path = config_path(explicit)
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{path}: {exc}") from None
    try:
        parsed = FileConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise SettingsError(f"{path or 'configuration'}: {problems}") from None
    try:
        catalogue = _catalogue(parsed)
        signup, reward = Money.parse(parsed.signup_quota), Money.parse(parsed.invite_reward)
    except DomainError as exc:
        raise SettingsError(f"{path or 'configuration'}: {exc}") from None
    return Settings(
        database_url=database_url or os.environ.get("TOKENSEA_DATABASE_URL") or DEFAULT_URL,
        signup_quota=signup,
        invite_reward=reward,
        invite_max_rewards_per_day=parsed.invite_max_rewards_per_day,
        jwt_ttl_days=parsed.jwt_ttl_days,
        catalogue=catalogue,
        upstream=parsed.upstream,
        server=parsed.server,
        projections=parsed.projections,
        ledger=parsed.ledger,
        source=str(path) if path else "built-in defaults",
        provider_keys={
            p.name: os.environ.get(p.api_key_env, "") for p in catalogue.providers.values()
        },
        jwt_secret=os.environ.get("TOKENSEA_JWT_SECRET", ""),
        metrics_token=os.environ.get("TOKENSEA_METRICS_TOKEN", ""),
    )


def _catalogue(parsed: FileConfig) -> Catalogue:
    providers: dict[str, Provider] = {}
    for entry in [*builtin.PROVIDERS, *(p.model_dump() for p in parsed.providers)]:
        providers[entry["name"]] = Provider(
            name=entry["name"],
            protocol=Protocol(entry["protocol"]),
            base_url=entry["base_url"].rstrip("/"),
            api_key_env=entry["api_key_env"],
        )
    # Built-in models first; a configured id replaces the built-in routes for that id.
    # The same id configured twice gives a fallback route, tried when the first fails.
    routes: dict[str, list[Route]] = {}
    limits: dict[str, int | None] = {}
    configured: set[str] = set()
    entries = [*((m, False) for m in builtin.MODELS), *((m.model_dump(), True) for m in parsed.models)]
    for entry, from_file in entries:
        model_id = entry["id"]
        if from_file and model_id not in configured:
            routes[model_id] = []
            configured.add(model_id)
        if entry["provider"] not in providers:
            raise SettingsError(f"model {model_id!r}: unknown provider {entry['provider']!r}")
        routes.setdefault(model_id, []).append(
            Route(
                provider=entry["provider"],
                upstream_model=entry.get("upstream_model") or model_id,
                price=Price.of(entry["input"], entry["output"], entry.get("cache_read"), entry.get("cache_write")),
                structured_output=bool(entry.get("structured_output")),
            )
        )
        limits[model_id] = entry.get("max_output_tokens") or limits.get(model_id)
    models = {model_id: Model(model_id, tuple(route), limits[model_id]) for model_id, route in routes.items()}
    plans = {}
    for plan in parsed.plans:
        unknown = [m for m in plan.models if m not in models]
        if unknown:
            raise SettingsError(f"plan {plan.id}: unknown models {unknown}")
        plans[plan.id] = Plan(plan.id, plan.name, tuple(plan.models), multiplier_of(plan.price_multiplier),
                              Limits(plan.rpm, plan.tpm, plan.max_concurrency))
    return Catalogue(providers=providers, models=models, plans=plans)


def price_multiplier(plan: Plan | None) -> Decimal:
    return plan.price_multiplier if plan is not None else Decimal(1)
