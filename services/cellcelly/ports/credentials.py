"""Self-care credentials, sessions, reset codes and vouchers (kept in the system of record).

Only hashes are stored: argon2 for what subscribers choose (password, security key), SHA-256 for
the random values the system makes (refresh tokens, vouchers; too long to guess) and a keyed hash
for the short reset codes. Every operation that must happen once (rotate a refresh token, use a
reset code, redeem a voucher) is one conditional write, so two racing requests cannot both win.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from cellcelly.ports.records import SubscriberRecord

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Credential:
    msisdn: str
    password_hash: str
    security_key_hash: str
    role: str = "subscriber"  # | "admin"
    failed_logins: int = 0  # consecutive, since the last success or lock
    locked_until: int = 0  # epoch seconds; 0: not locked
    changed_at: int = 0  # when the password was last set
    version: int = 0  # bumped when the role or password changes: older access tokens lose admin rights


@dataclass(frozen=True, slots=True)
class RefreshGrant:
    token_hash: str
    msisdn: str
    expires_at: int
    remember: bool  # "remember me": the long lifetime, kept across rotations
    family: str  # the login this token descends from (rotation keeps it)
    reused: bool = False  # from take_refresh: it had been used already, and its family is now revoked


@dataclass(frozen=True, slots=True)
class ResetCode:
    msisdn: str
    code_hash: str
    expires_at: int
    created_at: int
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class Voucher:
    code_hash: str
    amount: int  # kuruş
    created_at: int
    batch: str = ""
    used_by: str = ""
    used_at: int = 0
    credited_at: int = 0  # when its top-up was made durable; 0: not (yet) credited


class CredentialStore(Protocol):
    def register(self, subscriber: SubscriberRecord, credential: Credential) -> None:
        """The subscriber and their credential in one transaction (raises SubscriberExists)."""

    def credential(self, msisdn: str) -> Credential | None: ...

    def set_password(self, msisdn: str, password_hash: str, changed_at: int) -> None:
        """New password, version bumped; failures and lock cleared, every refresh token of the
        subscriber revoked."""

    def reserve_attempt(self, msisdn: str, now: int, limit: int) -> bool:
        """Count a password attempt before it is verified: true unless the number is locked or
        `limit` attempts are already counted. One conditional write, so parallel guesses cannot
        get more than `limit` verifications."""

    def attempt_failed(self, msisdn: str, now: int, limit: int, lock_seconds: int) -> Credential:
        """A reserved attempt was wrong: at `limit` counted ones, lock until now + lock_seconds
        (and count afresh). Returns the new state."""

    def login_succeeded(self, msisdn: str) -> None:
        """A reserved attempt was right: the count starts again."""

    def set_role(self, msisdn: str, role: str) -> bool:
        """New role, version bumped; False when there is no such credential."""

    def add_refresh(self, grant: RefreshGrant, created_at: int) -> None: ...

    def take_refresh(self, token_hash: str, now: int) -> RefreshGrant | None:
        """Revoke a live refresh token and return it (rotation: each can be used once). A token
        used before is a stolen copy or a replay: its whole family is revoked and it comes back
        with `reused` set. None when unknown or expired."""

    def revoke_refresh(self, msisdn: str) -> int:
        """Revoke all of a subscriber's refresh tokens (logout everywhere, password changed)."""

    def put_reset_code(self, code: ResetCode, resend_seconds: int) -> bool:
        """Store the subscriber's new reset code (only the newest one is valid) unless one was
        stored less than `resend_seconds` before `code.created_at`: false then. Decided by single
        conditional statements, so parallel requests store (and send) one code."""

    def reset_code(self, msisdn: str) -> ResetCode | None: ...

    def reserve_reset_attempt(self, msisdn: str, max_attempts: int) -> bool:
        """Count a try before it is checked: false when the code is gone or its tries are spent."""

    def reset_code_failed(self, msisdn: str, max_attempts: int) -> None:
        """A reserved try was wrong; at `max_attempts` the code is gone."""

    def take_reset_code(self, msisdn: str, code_hash: str, now: int) -> bool:
        """Use the code: true once, for the right unexpired code; the code is gone after."""

    def add_vouchers(self, vouchers: list[Voucher]) -> None: ...

    def claim_voucher(self, code_hash: str, msisdn: str, now: int) -> tuple[Voucher | None, bool]:
        """Mark an unused voucher used by `msisdn`: (the voucher as it is now, whether this call
        claimed it); (None, False) when there is no such voucher. Committed on its own: from then on
        no one else can have it, whatever happens to the top-up."""

    def credit_voucher(
        self, code_hash: str, msisdn: str, now: int, credit: Callable[[Voucher], T]
    ) -> T | None:
        """In one transaction: lock the voucher if `msisdn` claimed it and it is not credited yet,
        run `credit` (the balance-store top-up, idempotent by its held reference), then mark it
        credited. None, without calling `credit`, when it is not eligible (credited by a racing
        call, which the lock made this one wait for). `credit` raising rolls the mark back."""
