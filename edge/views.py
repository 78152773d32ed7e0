"""How users, keys, logs and plans look in JSON: camelCase, money as exact strings."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from domain.catalogue import Model, Plan
from domain.money import format_decimal
from edge import limits


def money(value: Decimal | None) -> str | None:
    return None if value is None else format_decimal(value)


def timestamp(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def user(row: dict[str, Any], balance: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(row["user_id"]),
        "username": row["username"],
        "name": row["name"],
        "email": row["email"],
        "role": row["role"],
        "status": row["status"],
        "quota": money(balance["quota"]),
        "usedQuota": money(balance["used"]),
        "requestCount": balance["request_count"],
        "inviteCode": row["invite_code"],
        "createdAt": timestamp(row["created_at"]),
        "limits": limits.view(row.get("limits")),
    }


def api_key(row: dict[str, Any], balance: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "id": str(row["key_id"]),
        "keyPrefix": row["prefix"],
        "name": row["name"],
        "status": row["status"],
        "quota": money(row["quota"]),
        "usedQuota": money(balance["used"] if balance else Decimal(0)),
        "models": row["models"],
        "planId": row["plan_id"],
        "expiresAt": timestamp(row["expires_at"]),
        "createdAt": timestamp(row["created_at"]),
        "lastUsedAt": timestamp(balance["last_used_at"] if balance else None),
        "limits": limits.view(row.get("limits")),
    }


def log(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["position"],
        "requestId": row["request_id"],
        "createdAt": timestamp(row["created_at"]),
        "model": row["model"],
        "provider": row["provider"],
        "tokenId": str(row["key_id"]),
        "tokenName": row["key_name"],
        "endpoint": row["endpoint"],
        "stream": row["stream"],
        "promptTokens": row["input_tokens"] + row["cache_read_tokens"] + row["cache_write_tokens"],
        "completionTokens": row["output_tokens"],
        "cacheReadTokens": row["cache_read_tokens"],
        "cacheWriteTokens": row["cache_write_tokens"],
        "cost": money(row["cost"]),
        "latencyMs": row["latency_ms"],
        "status": row["status"],
        "usageSource": row["usage_source"],
    }


def plan(value: Plan) -> dict[str, Any]:
    return {
        "id": value.id,
        "name": value.name,
        "models": list(value.models),
        "priceMultiplier": format_decimal(value.price_multiplier),
        "limits": limits.view(value.limits),
    }


def model(value: Model) -> dict[str, Any]:
    """A model alias with its first route's unit prices, in cents per million tokens."""
    price = value.primary.price
    return {
        "id": value.id,
        "input": format_decimal(price.input),
        "output": format_decimal(price.output),
        "cacheRead": format_decimal(price.cache_read),
        "cacheWrite": format_decimal(price.cache_write),
        "maxOutputTokens": value.max_output_tokens,
    }
