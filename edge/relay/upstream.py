"""Calling a provider: its URL, its credentials, its failures named.

Failures before the answer starts are ``UpstreamError``s, marked retryable when another
provider might do better (429, 5xx, 529, timeouts, refused connections, rejected
credentials); the relay then tries the model's next route once. A provider's own
verdict on a bad request (400, 413, 422) is passed to the client as theirs, and so is a
rate limit (429, with the provider's Retry-After) once no route could take the call.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import orjson

from domain.catalogue import Protocol, Provider
from edge.settings import Settings

log = logging.getLogger("tokensea.upstream")

ANTHROPIC_VERSION = "2023-06-01"
MAX_ERROR_BODY = 64 * 1024
OPENAI_PATHS = {"chat": "chat/completions", "responses": "responses", "embeddings": "embeddings"}


@dataclass
class UpstreamError(Exception):
    status: int  # what the client gets
    code: str
    message: str
    retryable: bool
    retry_after: int | None = None  # seconds, from a rate-limited provider's Retry-After

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"


def url(provider: Provider, operation: str) -> str:
    """``operation``: ``chat``, ``responses`` or ``embeddings`` (OpenAI), ``messages`` or
    ``count_tokens`` (Anthropic)."""
    base = provider.base_url
    if provider.protocol is Protocol.OPENAI:
        return f"{base}/{OPENAI_PATHS[operation]}"
    prefix = base if base.endswith("/v1") else f"{base}/v1"
    return f"{prefix}/messages/count_tokens" if operation == "count_tokens" else f"{prefix}/messages"


def headers(
    provider: Provider, key: str, passthrough: dict[str, str] | None = None, request_id: str | None = None
) -> dict[str, str]:
    sent = {"content-type": "application/json"}
    if request_id:
        sent["x-tokensea-request-id"] = request_id  # lets operators match provider logs to the ledger
    if provider.protocol is Protocol.OPENAI:
        sent["authorization"] = f"Bearer {key}"
    else:
        sent["x-api-key"] = key
        sent["anthropic-version"] = ANTHROPIC_VERSION
    if passthrough:
        sent.update(passthrough)
    return sent


def _message(raw: bytes) -> str:
    try:
        data: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw[:300].decode("utf-8", "replace")
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"][:1000]
    if isinstance(error, str):
        return error[:1000]
    return "no detail"


async def open_call(
    session: aiohttp.ClientSession,
    settings: Settings,
    provider: Provider,
    operation: str,
    body: bytes,
    passthrough: dict[str, str] | None = None,
    request_id: str | None = None,
) -> aiohttp.ClientResponse:
    """Send the request and wait for the response's status line and headers."""
    key = settings.provider_keys.get(provider.name, "")
    if not key:
        log.error("provider %s has no API key: set %s", provider.name, provider.api_key_env)
        raise UpstreamError(502, "upstream_unconfigured", f"the provider '{provider.name}' is not configured", True)
    try:
        response = await session.post(
            url(provider, operation),
            data=body,
            headers=headers(provider, key, passthrough, request_id),
            timeout=aiohttp.ClientTimeout(
                total=None,
                connect=settings.upstream.connect_timeout,
                sock_read=settings.upstream.first_byte_timeout,
            ),
        )
    except TimeoutError:
        raise UpstreamError(504, "upstream_timeout", f"'{provider.name}' did not answer in time", True) from None
    except aiohttp.ClientError as exc:
        raise UpstreamError(502, "upstream_unreachable", f"cannot reach '{provider.name}': {type(exc).__name__}", True) from None
    if response.status < 300:
        return response
    try:
        raw = await response.content.read(MAX_ERROR_BODY)
    except (aiohttp.ClientError, TimeoutError):
        raw = b""
    finally:
        response.release()
    detail = _message(raw)
    status = response.status
    log.warning("provider %s answered %d: %s", provider.name, status, detail[:200])
    if status in (400, 409, 413, 422):
        return_status = 413 if status == 413 else 400
        raise UpstreamError(return_status, "upstream_rejected_request", f"the provider rejected the request: {detail}", False)
    if status in (401, 403):
        raise UpstreamError(502, "upstream_auth_failed", f"the provider '{provider.name}' refused the gateway's credentials", True)
    if status == 404:
        raise UpstreamError(502, "upstream_model_unavailable", f"the provider '{provider.name}' does not serve this model", True)
    if status in (408, 504):
        raise UpstreamError(504, "upstream_timeout", f"'{provider.name}' timed out ({status})", True)
    # The provider's own text stays in our logs: it can name accounts or organizations.
    if status == 429:  # the client should wait and retry, as the provider asks: not a gateway failure
        raise UpstreamError(429, "upstream_rate_limited", f"the provider '{provider.name}' is rate limiting requests; "
                            "retry later", True, retry_after(response.headers.get("retry-after")))
    return_code = "upstream_overloaded" if status == 529 else "upstream_error"
    raise UpstreamError(502, return_code, f"the provider '{provider.name}' failed with status {status}", True)


def retry_after(value: str | None, now: float | None = None) -> int | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), or None if it
    is absent or not one of those; bounded to a day, so no nonsense is passed on."""
    if not value:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        seconds = int(text[:9])
    else:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = math.ceil(when.timestamp() - (time.time() if now is None else now))
    return min(max(seconds, 0), 86_400)
