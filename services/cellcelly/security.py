"""Password hashing, access tokens and the random values self-care hands out.

- Passwords and security keys: argon2id (argon2-cffi), cost from the settings; hashing runs in a
  thread so the event loop (which also charges calls in the embedded stack) never waits on it.
- Access tokens: short-lived JWTs (HS256) naming the subscriber and role. Refresh tokens: 256-bit
  random strings, stored only as SHA-256, rotated on every use.
- Reset codes: 6 random digits, stored as HMAC-SHA256 under the token secret (a plain hash of a
  6-digit code is reversed by trying a million values).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

ACCESS_AUDIENCE = "cellcelly-selfcare"


class TokenInvalid(Exception):
    """Missing, malformed, expired or forged access token."""


@dataclass(frozen=True, slots=True)
class AccessClaims:
    msisdn: str
    role: str
    expires_at: int


class Passwords:
    """argon2id hashing with a bound on how many hashes run at once (each takes `memory_kib`)."""

    def __init__(
        self, time_cost: int = 3, memory_kib: int = 65536, parallelism: int = 1, concurrent: int = 2
    ):
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)
        self._slots = asyncio.Semaphore(concurrent)
        # verified against when the MSISDN is unknown, so an unknown number takes as long as a known one
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))

    @property
    def parameters(self) -> str:
        h = self._hasher
        return f"argon2id t={h.time_cost} m={h.memory_cost} KiB p={h.parallelism}"

    async def hash(self, secret: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self._hasher.hash, secret)

    async def verify(self, stored: str | None, secret: str) -> bool:
        async with self._slots:
            return await asyncio.to_thread(self._verify, stored, secret)

    def _verify(self, stored: str | None, secret: str) -> bool:
        try:
            return self._hasher.verify(stored or self._dummy, secret) and stored is not None
        except (VerificationError, InvalidHashError):
            return False


class Tokens:
    def __init__(self, secret: str, access_seconds: int = 900) -> None:
        if len(secret) < 32:
            raise ValueError("the token secret must be at least 32 characters")
        self._key = secret.encode()
        self.access_seconds = access_seconds

    def issue(self, msisdn: str, role: str, now: float | None = None) -> str:
        issued = int(time.time() if now is None else now)
        claims = {
            "sub": msisdn,
            "role": role,
            "iat": issued,
            "exp": issued + self.access_seconds,
            "aud": ACCESS_AUDIENCE,
            "jti": secrets.token_hex(8),
        }
        return jwt.encode(claims, self._key, algorithm="HS256")

    def verify(self, token: str) -> AccessClaims:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=["HS256"],  # never "none", never one the token names itself
                audience=ACCESS_AUDIENCE,
                options={"require": ["sub", "exp", "iat", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise TokenInvalid(str(exc)) from None
        sub, role = claims.get("sub"), claims.get("role", "subscriber")
        if not isinstance(sub, str) or not isinstance(role, str):
            raise TokenInvalid("bad claims")
        return AccessClaims(sub, role, int(claims["exp"]))

    def code_hash(self, msisdn: str, code: str) -> str:
        return hmac.new(self._key, f"reset:{msisdn}:{code}".encode(), hashlib.sha256).hexdigest()


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def new_reset_code() -> str:
    return f"{secrets.randbelow(10**6):06d}"


def new_voucher_code() -> str:
    return f"{secrets.randbelow(10**16):016d}"
