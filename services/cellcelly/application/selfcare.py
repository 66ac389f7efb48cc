"""Self-care use cases: what the MW API, the web UI, SMS and IVR do for a subscriber.

Sign-up writes the subscriber and their credential in one transaction of the system of record,
then provisions the balance store (and tells the cache and the gateways through the account
listeners). Logins are throttled per MSISDN: an attempt is counted *before* its password is
verified (one conditional write), so parallel guesses get at most `max_failures` verifications;
after `max_failures` wrong ones in a row the number is locked for `lock_seconds`, and an unknown
number is throttled the same way (in memory), so the answers never tell which numbers have
accounts. Forgot-password always answers the same and does its work in the background, for the
same reason; one code a minute is decided by the store's conditional write, not a read.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from cellcelly.application.accounts import AccountService
from cellcelly.domain.account import Account, Status
from cellcelly.domain.balance_summary import BalanceSummary, summarise
from cellcelly.domain.errors import DomainError
from cellcelly.domain.provisioning import InsufficientFunds
from cellcelly.domain.selfcare_rules import normalise_voucher
from cellcelly.errors import ApiError
from cellcelly.ports.balance_store import BalanceStore, off_loop
from cellcelly.ports.credentials import Credential, CredentialStore, RefreshGrant, ResetCode, Voucher
from cellcelly.ports.records import SubscriberExists, SubscriberRecord, SystemOfRecord
from cellcelly.security import (
    AccessClaims,
    Passwords,
    Tokens,
    new_refresh_family,
    new_refresh_token,
    new_reset_code,
    new_voucher_code,
    sha256_hex,
)

log = logging.getLogger(__name__)


class StoreBalanceLookup:
    """BalanceLookup on the real-time balance store (in the process that holds it, or VoltDB)."""

    def __init__(self, store: BalanceStore, clock: Callable[[], float] = time.time) -> None:
        self.store, self.clock = store, clock

    async def __call__(self, msisdn: str) -> BalanceSummary | None:
        account = await self.store.get_async(msisdn)
        return None if account is None else summarise(account, int(self.clock()))


# --- errors: each names its HTTP status and the stable `cause` clients switch on ---------------


class SelfCareError(ApiError):
    status = 400
    cause = "INVALID_INPUT"
    title = "Bad request"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail, **extra)


class InvalidInput(SelfCareError):
    def __init__(self, param: str, code: str, reason: str) -> None:
        super().__init__(reason, invalidParams=[{"param": param, "reason": reason, "code": code}])


class InvalidCredentials(SelfCareError):
    status, cause, title = 401, "INVALID_CREDENTIALS", "Unauthorized"


class TokenRejected(SelfCareError):
    status, cause, title = 401, "TOKEN_INVALID", "Unauthorized"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer error="invalid_token"'}


class Locked(SelfCareError):
    status, cause, title = 429, "LOCKED", "Too many attempts"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail, retryAfter=max(1, retry_after))
        self.retry_after = max(1, retry_after)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class Taken(SelfCareError):
    status, cause, title = 409, "MSISDN_TAKEN", "Conflict"


class UnknownPackage(SelfCareError):
    status, cause, title = 422, "UNKNOWN_PACKAGE", "Unprocessable"


class Insufficient(SelfCareError):
    status, cause, title = 402, "INSUFFICIENT_FUNDS", "Insufficient funds"


class Suspended(SelfCareError):
    status, cause, title = 403, "SUSPENDED", "Forbidden"


class InvalidCode(SelfCareError):
    cause = "INVALID_CODE"


class InvalidVoucher(SelfCareError):
    status, cause, title = 404, "INVALID_VOUCHER", "Not found"


class VoucherUsed(SelfCareError):
    status, cause, title = 409, "VOUCHER_USED", "Conflict"


class Forbidden(SelfCareError):
    status, cause, title = 403, "FORBIDDEN", "Forbidden"


class NotFound(SelfCareError):
    status, cause, title = 404, "NOT_FOUND", "Not found"


# --- policy and helpers -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Policy:
    max_failures: int = 5
    lock_seconds: int = 900
    refresh_seconds: int = 12 * 3600
    remember_seconds: int = 30 * 86400
    reset_code_seconds: int = 600
    reset_code_attempts: int = 5
    reset_resend_seconds: int = 60  # one code per minute per MSISDN: no SMS bombing
    voucher_failures: int = 5  # wrong voucher codes per subscriber per lock window


class Throttle:
    """Failures per key in memory, for keys with no row to count in (unknown MSISDNs, vouchers)."""

    def __init__(self, limit: int, window: int, size: int = 100_000) -> None:
        self.limit, self.window, self.size = limit, window, size
        self._seen: OrderedDict[str, tuple[int, int]] = OrderedDict()  # key -> (failures, window end)

    def blocked_for(self, key: str, now: int) -> int:
        failures, until = self._seen.get(key, (0, 0))
        return until - now if failures >= self.limit and until > now else 0

    def reserve(self, key: str, now: int) -> bool:
        """Count an attempt before it is judged (no await between the check and the count, so
        parallel attempts cannot pass together); false when `limit` are counted in the window."""
        failures, until = self._seen.get(key, (0, 0))
        if until > now and failures >= self.limit:
            return False
        self.failed(key, now)
        return True

    def failed(self, key: str, now: int) -> None:
        failures, until = self._seen.pop(key, (0, 0))
        if until <= now:
            failures, until = 0, now + self.window
        self._seen[key] = (failures + 1, until)
        while len(self._seen) > self.size:
            self._seen.popitem(last=False)


CodeSender = Callable[[SubscriberRecord, str, str], Awaitable[None]]  # (to, "sms" | "email", text)


@dataclass(frozen=True, slots=True)
class Session:
    access_token: str
    refresh_token: str
    expires_in: int
    refresh_expires_in: int
    role: str


class SelfCare:
    def __init__(
        self,
        *,
        accounts: AccountService,
        credentials: CredentialStore,
        passwords: Passwords,
        tokens: Tokens,
        send_code: CodeSender | None = None,
        policy: Policy = Policy(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.accounts = accounts
        self.store: BalanceStore = accounts.store
        self.records: SystemOfRecord = accounts.records
        self.credentials = credentials
        self.passwords = passwords
        self.tokens = tokens
        self.send_code = send_code
        self.policy = policy
        self.clock = clock
        self._unknown = Throttle(policy.max_failures, policy.lock_seconds)
        self._vouchers = Throttle(policy.voucher_failures, policy.lock_seconds)
        self._background: set[asyncio.Task[None]] = set()

    def _now(self) -> int:
        return int(self.clock())

    @staticmethod
    async def _db(fn: Callable[..., Any], *args: Any) -> Any:
        """System-of-record calls leave the event loop (it also serves charging)."""
        return await asyncio.to_thread(fn, *args)

    # --- sign-up and sessions -------------------------------------------------------------------

    async def register(
        self,
        first_name: str,
        last_name: str,
        msisdn: str,
        email: str,
        password: str,
        security_key: str,
        package: str,
    ) -> Account:
        if package not in self.accounts.catalogue.current.packages:
            raise UnknownPackage(f"no package {package!r} in the catalogue")
        now = self._now()
        credential = Credential(
            msisdn,
            await self.passwords.hash(password),
            await self.passwords.hash(security_key),
            changed_at=now,
        )
        subscriber = SubscriberRecord(
            msisdn, first_name.strip(), last_name.strip(), email, "active", package, now
        )
        try:
            account = await off_loop(
                self.store, self.accounts.open, subscriber, lambda s: self.credentials.register(s, credential)
            )
        except SubscriberExists:
            raise Taken(f"{msisdn} is already registered") from None
        log.info("subscriber registered", extra={"msisdn": msisdn, "package": package})
        return account

    async def login(self, msisdn: str, password: str, remember: bool) -> Session:
        now = self._now()
        credential: Credential | None = await self._db(self.credentials.credential, msisdn)
        if credential is None:
            if not self._unknown.reserve(msisdn, now):
                raise Locked(
                    "too many failed logins; try again later", self._unknown.blocked_for(msisdn, now)
                )
            await self.passwords.verify(None, password)  # as long as a known number takes
            if wait := self._unknown.blocked_for(msisdn, now):
                raise Locked("too many failed logins; try again later", wait)
            raise InvalidCredentials("wrong MSISDN or password")
        await self._check_password(credential, password, now, "wrong MSISDN or password")
        return await self._session(msisdn, credential.role, credential.version, remember, now)

    async def _check_password(self, credential: Credential, password: str, now: int, wrong: str) -> None:
        """Raises Locked or InvalidCredentials(wrong) unless `password` is the credential's.

        The attempt is counted before argon2 runs and uncounted by a success, so N parallel
        guesses cost the attacker N counted attempts and get at most `max_failures` verifications."""
        msisdn, limit = credential.msisdn, self.policy.max_failures
        if credential.locked_until > now:
            raise Locked("too many failed attempts; try again later", credential.locked_until - now)
        if not await self._db(self.credentials.reserve_attempt, msisdn, now, limit):
            state: Credential | None = await self._db(self.credentials.credential, msisdn)
            # locked by a parallel attempt, or `limit` attempts still being verified: a second
            wait = state.locked_until - now if state is not None and state.locked_until > now else 1
            raise Locked("too many failed attempts; try again later", wait)
        if await self.passwords.verify(credential.password_hash, password):
            await self._db(self.credentials.login_succeeded, msisdn)
            return
        state = await self._db(self.credentials.attempt_failed, msisdn, now, limit, self.policy.lock_seconds)
        if state is not None and state.locked_until > now:
            log.warning("login locked after repeated failures", extra={"msisdn": msisdn})
            raise Locked("too many failed attempts; try again later", state.locked_until - now)
        raise InvalidCredentials(wrong)

    async def _session(
        self, msisdn: str, role: str, version: int, remember: bool, now: int, family: str | None = None
    ) -> Session:
        lifetime = self.policy.remember_seconds if remember else self.policy.refresh_seconds
        refresh = new_refresh_token()
        grant = RefreshGrant(
            sha256_hex(refresh), msisdn, now + lifetime, remember, family or new_refresh_family()
        )
        await self._db(self.credentials.add_refresh, grant, now)
        access = self.tokens.issue(msisdn, role, now, version)
        return Session(access, refresh, self.tokens.access_seconds, lifetime, role)

    async def refresh(self, refresh_token: str) -> Session:
        now = self._now()
        grant: RefreshGrant | None = await self._db(
            self.credentials.take_refresh, sha256_hex(refresh_token), now
        )
        if grant is None:
            raise TokenRejected("the refresh token is unknown, expired or already used")
        if grant.reused:
            log.warning(
                "a used refresh token came back: its session is revoked", extra={"msisdn": grant.msisdn}
            )
            raise TokenRejected("the refresh token is unknown, expired or already used")
        credential: Credential | None = await self._db(self.credentials.credential, grant.msisdn)
        if credential is None:
            raise TokenRejected("no such subscriber")
        return await self._session(
            grant.msisdn, credential.role, credential.version, grant.remember, now, grant.family
        )

    async def authorise_admin(self, who: AccessClaims) -> None:
        """An access token's admin rights hold while its credential is unchanged: one read of the
        credential per admin request (admin routes are rare; the subscriber routes do none)."""
        if who.role != "admin":
            raise Forbidden("administrators only")
        credential: Credential | None = await self._db(self.credentials.credential, who.msisdn)
        if credential is None or who.version is None or credential.version != who.version:
            raise TokenRejected("the account changed since this token was issued; sign in again")
        if credential.role != "admin":  # (a role change bumps the version: defence in depth)
            raise Forbidden("administrators only")

    async def logout(self, refresh_token: str) -> None:
        await self._db(self.credentials.take_refresh, sha256_hex(refresh_token), self._now())

    # --- passwords --------------------------------------------------------------------------------

    def forgot(self, msisdn: str, channel: str) -> None:
        """Send a reset code if there is such a subscriber; returns at once, and the same either way."""
        task = asyncio.ensure_future(self._send_reset_code(msisdn, channel))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _send_reset_code(self, msisdn: str, channel: str) -> None:
        try:
            now = self._now()
            subscriber: SubscriberRecord | None = await self._db(self.records.get_subscriber, msisdn)
            if subscriber is None:
                return
            if self.send_code is None:
                log.warning("no channel to send reset codes", extra={"msisdn": msisdn})
                return
            code = new_reset_code()
            expires = now + self.policy.reset_code_seconds
            stored = await self._db(
                self.credentials.put_reset_code,
                ResetCode(msisdn, self.tokens.code_hash(msisdn, code), expires, now),
                self.policy.reset_resend_seconds,
            )
            if not stored:  # the store decides, so parallel requests cannot each send one
                log.info("reset code asked again too soon; not sent", extra={"msisdn": msisdn})
                return
            minutes = self.policy.reset_code_seconds // 60
            text = (
                f"CellCelly şifre sıfırlama kodunuz: {code}. {minutes} dakika geçerlidir. "
                "Bu kodu kimseyle paylaşmayın."
            )
            await self.send_code(subscriber, channel, text)
            log.info("reset code sent", extra={"msisdn": msisdn, "channel": channel})
        except Exception:  # noqa: BLE001 - a background task: log and go on (never the code)
            log.exception("sending a reset code failed", extra={"msisdn": msisdn, "channel": channel})

    async def reset(self, msisdn: str, code: str, security_key: str, new_password: str) -> None:
        now = self._now()
        stored: ResetCode | None = await self._db(self.credentials.reset_code, msisdn)
        credential: Credential | None = await self._db(self.credentials.credential, msisdn)
        if stored is None or credential is None or stored.expires_at <= now:
            await self.passwords.verify(None, security_key)  # as long as a live code takes
            raise InvalidCode("the code is wrong, expired or already used")
        # counted before it is judged: parallel guesses get no more than the allowed tries
        attempts = self.policy.reset_code_attempts
        if not await self._db(self.credentials.reserve_reset_attempt, msisdn, attempts):
            raise InvalidCode("the code is wrong, expired or already used")
        key_ok = await self.passwords.verify(credential.security_key_hash, security_key)
        if not (hmac.compare_digest(stored.code_hash, self.tokens.code_hash(msisdn, code)) and key_ok):
            await self._db(self.credentials.reset_code_failed, msisdn, attempts)
            raise InvalidCode("the code is wrong, expired or already used")
        if not await self._db(self.credentials.take_reset_code, msisdn, stored.code_hash, now):
            raise InvalidCode("the code is wrong, expired or already used")
        await self._db(self.credentials.set_password, msisdn, await self.passwords.hash(new_password), now)
        log.info("password reset", extra={"msisdn": msisdn})

    async def change_password(self, msisdn: str, current: str, new: str) -> None:
        now = self._now()
        credential: Credential | None = await self._db(self.credentials.credential, msisdn)
        if credential is None:
            raise TokenRejected("no such subscriber")
        await self._check_password(credential, current, now, "the current password is wrong")
        if current == new:
            raise InvalidInput(
                "newPassword", "same_password", "the new password must differ from the current one"
            )
        await self._db(self.credentials.set_password, msisdn, await self.passwords.hash(new), now)
        log.info("password changed", extra={"msisdn": msisdn})

    # --- what a subscriber sees and buys ---------------------------------------------------------

    async def profile(self, msisdn: str) -> tuple[SubscriberRecord, Credential | None]:
        subscriber: SubscriberRecord | None = await self._db(self.records.get_subscriber, msisdn)
        if subscriber is None:
            raise NotFound(f"no subscriber {msisdn}")
        credential: Credential | None = await self._db(self.credentials.credential, msisdn)
        return subscriber, credential

    async def account(self, msisdn: str) -> Account:
        """The real-time account; re-provisioned when the record has the subscriber and the store
        does not (a crash between the two writes of sign-up)."""
        account = await self.store.get_async(msisdn)
        if account is not None:
            return account
        subscriber: SubscriberRecord | None = await self._db(self.records.get_subscriber, msisdn)
        if subscriber is None:
            raise NotFound(f"no subscriber {msisdn}")
        log.warning(
            "subscriber on record but not in the balance store: provisioning", extra={"msisdn": msisdn}
        )
        return self.accounts.provision(msisdn, subscriber.package)

    async def usage(self, msisdn: str, limit: int, before: tuple[int, int, str] | None = None) -> list[Any]:
        return list(await self._db(self.records.usage_for, msisdn, limit, before))

    async def buy_package(self, msisdn: str, package: str, request_id: str | None) -> Account:
        await self.account(msisdn)
        reference = f"addon:{request_id or uuid.uuid4().hex}"
        try:
            return await off_loop(self.store, self.accounts.buy_package, msisdn, package, reference)
        except InsufficientFunds as exc:
            raise Insufficient(str(exc)) from None
        except DomainError as exc:
            if package not in self.accounts.catalogue.current.packages:
                raise UnknownPackage(str(exc)) from None
            raise Suspended(str(exc)) from None

    async def renewals(self, msisdn: str) -> list[str]:
        return list(await self._db(self.records.renewals_of, msisdn))

    async def set_renewal(self, msisdn: str, package: str, renew: bool) -> None:
        if renew and package not in self.accounts.catalogue.current.packages:
            raise UnknownPackage(f"no package {package!r} is sold")
        await self._db(self.records.set_renewal, msisdn, package, renew, self._now())
        log.info("package renewal chosen", extra={"msisdn": msisdn, "package": package, "renew": renew})

    async def redeem_voucher(self, msisdn: str, text: str) -> Account:
        """Credit a voucher once, ever, decided from the voucher's row, never from a window.

        1. Claim it (its own committed transaction): from then on it is this subscriber's, whatever
           happens next. Someone else's, or already credited: 409.
        2. One transaction of the record: lock the row while it is claimed by us and not credited,
           top up the balance store holding the reference, mark it credited, commit. A racing
           redemption waits on the lock, then finds it credited: 409.
        3. Release the held reference (the credit is durable now).
        A crash after 1 is finished by the next try (no time limit); after the top-up in 2, the
        held reference keeps that try from crediting again; after 2, the next try answers 409 and
        releases the reference left held. The claim must be committed before the top-up: were it
        rolled back with 2, another subscriber could claim a voucher already credited to this one.
        """
        now = self._now()
        if wait := self._vouchers.blocked_for(msisdn, now):
            raise Locked("too many wrong voucher codes; try again later", wait)
        await self.account(msisdn)
        code_hash = sha256_hex(normalise_voucher(text))
        reference = f"voucher:{code_hash[:32]}"
        voucher, _ = await self._db(self.credentials.claim_voucher, code_hash, msisdn, now)
        if voucher is None:
            self._vouchers.failed(msisdn, now)
            raise InvalidVoucher("no such voucher")
        if voucher.used_by == msisdn and not voucher.credited_at:

            def credit(v: Voucher) -> Account:  # runs in the record's transaction, off the loop
                return self.accounts.top_up(msisdn, v.amount, reference, hold=True, notify=False)

            credited = await self._db(self.credentials.credit_voucher, code_hash, msisdn, now, credit)
            if credited is not None:
                account = await off_loop(self.store, self.accounts.release_reference, msisdn, reference)
                self.accounts.notify("topup", msisdn)
                log.info("voucher redeemed", extra={"msisdn": msisdn, "amount": voucher.amount})
                return account
        elif voucher.used_by == msisdn:  # credited: a reference a crash left held goes now
            self.accounts.release_reference(msisdn, reference)
        self._vouchers.failed(msisdn, now)
        raise VoucherUsed("this voucher has been used")

    # --- admin ------------------------------------------------------------------------------------

    async def create_vouchers(self, amount: int, count: int, batch: str = "") -> list[str]:
        codes: list[str] = await self._db(
            create_vouchers, self.credentials, amount, count, batch, self._now()
        )
        return codes

    async def subscribers(self, limit: int, offset: int) -> list[SubscriberRecord]:
        return list(await self._db(self.records.list_subscribers, limit, offset))

    async def set_role(self, msisdn: str, role: str) -> bool:
        """Make a subscriber an administrator or not; False when they have no credential."""
        changed = bool(await self._db(self.credentials.set_role, msisdn, role))
        if changed:
            log.info("role changed", extra={"msisdn": msisdn, "role": role})
        return changed

    async def ready(self) -> None:
        """Raises unless both stores answer."""
        await self.store.get_async("0")
        await self._db(self.records.latest_catalogue)

    async def set_status(self, msisdn: str, status: Status) -> Account:
        await self.account(msisdn)
        return await off_loop(
            self.store, self.accounts.set_status, msisdn, status, f"admin:{uuid.uuid4().hex}"
        )


def create_vouchers(credentials: CredentialStore, amount: int, count: int, batch: str, now: int) -> list[str]:
    """Make `count` vouchers of `amount` kuruş: only their hashes are kept, the codes are returned
    to be shown once (the MW's admin API and `cellcelly vouchers` both make them here)."""
    if amount <= 0 or count <= 0:
        raise DomainError("a voucher needs a positive amount and count")
    batch = batch or f"batch-{now}-{uuid.uuid4().hex[:6]}"
    codes = [new_voucher_code() for _ in range(count)]
    credentials.add_vouchers([Voucher(sha256_hex(c), amount, now, batch) for c in codes])
    log.info("vouchers created", extra={"count": count, "amount": amount, "batch": batch})
    return codes
