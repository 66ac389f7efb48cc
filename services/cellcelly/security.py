"""Password hashing, access tokens and the random values self-care hands out.

- Passwords and security keys: argon2id (argon2-cffi), cost from the settings; hashing runs in a
  thread so the event loop (which also charges calls in the embedded stack) never waits on it.
- Access tokens: short-lived JWTs (HS256) naming the subscriber, role and credential version (the
  admin routes compare it with the stored one, so a demotion or a new password ends admin rights at
  once). Refresh tokens: 256-bit random strings, stored only as SHA-256, rotated on every use, each
  in the family of the login it descends from (a used one presented again revokes the family).
- Reset codes: 6 random digits, stored as HMAC-SHA256 under the token secret (a plain hash of a
  6-digit code is reversed by trying a million values).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from cellcelly.errors import ProtocolError

ACCESS_AUDIENCE = "cellcelly-selfcare"
VERIFIED_TOKENS = 50_000  # access tokens kept verified (~300 bytes each): the active subscribers of 15 min


class TokenInvalid(ProtocolError):
    """Missing, malformed, expired or forged access token."""


@dataclass(frozen=True, slots=True)
class AccessClaims:
    msisdn: str
    role: str
    expires_at: int
    version: int | None = None  # the credential's version when issued; None: not from a login


class Passwords:
    """argon2id hashing with a bound on how many hashes run at once (each takes `memory_kib`)."""

    def __init__(
        self, time_cost: int = 2, memory_kib: int = 19456, parallelism: int = 1, concurrent: int = 2
    ):
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)
        # taken in the worker thread, not on the loop: any event loop (or none) may call these
        self._slots = threading.BoundedSemaphore(concurrent)
        # verified against when the MSISDN is unknown, so an unknown number takes as long as a known one
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))

    @property
    def parameters(self) -> str:
        h = self._hasher
        return f"argon2id t={h.time_cost} m={h.memory_cost} KiB p={h.parallelism}"

    async def hash(self, secret: str) -> str:
        return await asyncio.to_thread(self._hash, secret)

    async def verify(self, stored: str | None, secret: str) -> bool:
        return await asyncio.to_thread(self._verify, stored, secret)

    def _hash(self, secret: str) -> str:
        with self._slots:
            return self._hasher.hash(secret)

    def _verify(self, stored: str | None, secret: str) -> bool:
        with self._slots:
            try:
                return self._hasher.verify(stored or self._dummy, secret) and stored is not None
            except (VerificationError, InvalidHashError):
                return False


class Tokens:
    def __init__(
        self, secret: str, access_seconds: int = 900, clock: Callable[[], float] = time.time, leeway: int = 30
    ) -> None:
        if len(secret) < 32:
            raise ValueError("the token secret must be at least 32 characters")
        self._key = secret.encode()
        self.access_seconds = access_seconds
        self.clock, self.leeway = clock, leeway
        # tokens whose signature and claims were verified, with their times (checked again on each
        # use): PyJWT's decode was ~40% of a balance query's CPU (4,871 -> 7,947 queries/s without
        # it), and a client sends one token with every request for 15 minutes. Only verified tokens
        # enter; the oldest go first.
        self._verified: dict[str, tuple[AccessClaims, int]] = {}

    def issue(self, msisdn: str, role: str, now: float | None = None, version: int = 0) -> str:
        issued = int(self.clock() if now is None else now)
        claims = {
            "sub": msisdn,
            "role": role,
            "ver": version,
            "iat": issued,
            "exp": issued + self.access_seconds,
            "aud": ACCESS_AUDIENCE,
            "jti": secrets.token_hex(8),
        }
        return jwt.encode(claims, self._key, algorithm="HS256")

    def verify(self, token: str) -> AccessClaims:
        known = self._verified.get(token)
        if known is not None:
            self._check_times(known[0].expires_at, known[1])
            return known[0]
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=["HS256"],  # never "none", never one the token names itself
                audience=ACCESS_AUDIENCE,
                # times are checked below on our clock (the one that issued them), not PyJWT's
                options={"require": ["sub", "exp", "iat", "aud"], "verify_exp": False, "verify_iat": False},
            )
        except jwt.PyJWTError as exc:
            raise TokenInvalid(str(exc)) from None
        sub, role, exp, iat = (
            claims.get("sub"),
            claims.get("role", "subscriber"),
            claims["exp"],
            claims["iat"],
        )
        if not isinstance(sub, str) or not isinstance(role, str):
            raise TokenInvalid("bad claims")
        if not isinstance(exp, int) or not isinstance(iat, int):
            raise TokenInvalid("bad times")
        version = claims.get("ver")
        if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
            raise TokenInvalid("bad version")
        self._check_times(exp, iat)
        verified = AccessClaims(sub, role, exp, version)
        cache = self._verified
        cache[token] = (verified, iat)
        if len(cache) > VERIFIED_TOKENS:
            del cache[next(iter(cache))]
        return verified

    def _check_times(self, exp: int, iat: int) -> None:
        now = self.clock()
        if now >= exp + self.leeway or iat > now + self.leeway:
            raise TokenInvalid("expired or not yet valid")

    def code_hash(self, msisdn: str, code: str) -> str:
        return hmac.new(self._key, f"reset:{msisdn}:{code}".encode(), hashlib.sha256).hexdigest()


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def new_refresh_family() -> str:
    return secrets.token_hex(16)


def new_reset_code() -> str:
    return f"{secrets.randbelow(10**6):06d}"


def new_voucher_code() -> str:
    return f"{secrets.randbelow(10**16):016d}"
