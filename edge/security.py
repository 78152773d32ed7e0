"""Passwords, sessions (JWT) and API keys (login throttling: ``edge.throttle``).

- Passwords: bcrypt at cost 12 over a SHA-256 of the password (bcrypt reads only 72
  bytes; the digest makes every byte count). Checks run off the event loop, and an
  unknown username is checked against a dummy hash so timing does not reveal it.
- Sessions: HS256 JWTs; the algorithm is pinned on decode, so ``alg: none`` and
  every other algorithm are refused, and ``exp``/``iat``/``sub`` are required.
- API keys: ``tsk-`` + 40 random alphanumerics (238 bits) from ``secrets``; only the
  SHA-256 digest is stored, so a key is found by its digest (a preimage, not a prefix,
  would be needed to probe it by timing).
- Tags: an HMAC-SHA256 under a key derived from the signing secret for one purpose,
  so what the server hands out (the request log's cursors) comes back unaltered.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
import string
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import bcrypt
import jwt

from edge.errors import Problem

BCRYPT_COST = 12
KEY_ALPHABET = string.ascii_letters + string.digits
KEY_LENGTH = 40
JWT_ALGORITHM = "HS256"


def _prepared(password: str) -> bytes:
    return base64.b64encode(hashlib.sha256(password.encode("utf-8")).digest())


def hash_password(password: str) -> str:
    return bcrypt.hashpw(_prepared(password), bcrypt.gensalt(BCRYPT_COST)).decode("ascii")


@functools.cache
def _dummy_hash() -> str:
    return bcrypt.hashpw(b"no such user", bcrypt.gensalt(BCRYPT_COST)).decode("ascii")


def check_password(password: str, hashed: str | None) -> bool:
    """Constant-time check; an unknown user (``hashed`` None) costs the same as a known one."""
    try:
        ok = bcrypt.checkpw(_prepared(password), (hashed or _dummy_hash()).encode("ascii"))
    except ValueError:
        return False
    return ok and hashed is not None


def new_api_key() -> str:
    return "tsk-" + "".join(secrets.choice(KEY_ALPHABET) for _ in range(KEY_LENGTH))


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_prefix(key: str) -> str:
    return key[:8]


def new_jwt_secret() -> str:
    return secrets.token_urlsafe(48)


class Sessions:
    def __init__(self, secret: str, ttl_days: int) -> None:
        self._secret = secret
        self._ttl = timedelta(days=ttl_days)

    def tag(self, purpose: str, data: bytes) -> bytes:
        """A MAC of ``data``, with a key of its own for ``purpose`` (never the JWT's)."""
        key = hmac.new(self._secret.encode("utf-8"), f"tokensea {purpose}".encode(), hashlib.sha256).digest()
        return hmac.new(key, data, hashlib.sha256).digest()

    def issue(self, user_id: UUID) -> tuple[str, datetime]:
        now = datetime.now(timezone.utc)
        expires = now + self._ttl
        claims = {"sub": str(user_id), "iat": int(now.timestamp()), "exp": int(expires.timestamp()), "iss": "tokensea"}
        return jwt.encode(claims, self._secret, algorithm=JWT_ALGORITHM), expires

    def verify(self, token: str) -> UUID:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._secret,
                algorithms=[JWT_ALGORITHM],
                issuer="tokensea",
                options={"require": ["exp", "iat", "sub", "iss"]},
            )
            return UUID(str(claims["sub"]))
        except jwt.ExpiredSignatureError:
            raise Problem(401, "unauthorized", "the session has expired; log in again") from None
        except (jwt.PyJWTError, ValueError):
            raise Problem(401, "unauthorized", "invalid session token") from None
