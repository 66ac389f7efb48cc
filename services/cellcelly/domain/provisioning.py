"""Changes to an account outside charging: opening it, top-ups, packages, suspension.

Like charging, each is a pure function returning an `AccountChange` that the balance store
commits atomically, with the ledger events it produced for the outbox.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from cellcelly.domain.account import DAY, Account, Bucket, Status
from cellcelly.domain.catalogue import Catalogue, ChargingPolicy, Package
from cellcelly.domain.charging import NotificationEvent, next_sweep
from cellcelly.domain.errors import DomainError


class InsufficientFunds(DomainError):
    """The wallet (after live reservations) cannot pay for this."""


@dataclass(frozen=True, slots=True)
class LedgerEvent:
    """A change of wallet or allowances that is not usage: provisioning, top-up, package purchase."""

    event_id: str
    msisdn: str
    kind: str  # "provisioned" | "topup" | "package" | "status"
    amount: int  # kuruş added to (+) or taken from (-) the wallet
    wallet_after: int
    occurred_at: int
    reference: str
    package: str = ""
    buckets: tuple[tuple[str, str, int, int, int], ...] = ()  # (id, service, units, valid_from, valid_until)
    status: str = ""
    revision: int = 0  # the account's revision before the commit: orders one subscriber's events


@dataclass(slots=True)
class AccountChange:
    account: Account
    events: list[LedgerEvent | NotificationEvent] = field(default_factory=list)
    applied: bool = True  # False when the reference was already applied (idempotent repeat)


def package_buckets(package: Package, reference: str, now: int) -> list[Bucket]:
    until = now + package.validity_days * DAY
    return [
        Bucket(f"{reference}:{service.value}", service, package.code, units, units, now, until)
        for service, units in package.allowances.items()
        if units > 0
    ]


def _bucket_tuples(buckets: list[Bucket]) -> tuple[tuple[str, str, int, int, int], ...]:
    return tuple((b.id, b.service.value, b.total, b.valid_from, b.valid_until) for b in buckets)


def _finish(acc: Account, policy: ChargingPolicy, now: int, event: LedgerEvent) -> AccountChange:
    stamped = replace(event, revision=acc.revision)
    acc.revision += 1
    acc.next_sweep = next_sweep(acc, policy, now)
    return AccountChange(acc, [stamped])


def open_account(msisdn: str, catalogue: Catalogue, package_code: str | None, now: int) -> AccountChange:
    """A new subscriber: the catalogue's initial wallet and, when chosen, a package's buckets."""
    acc = Account(msisdn, Status.ACTIVE, catalogue.initial_wallet)
    buckets: list[Bucket] = []
    if package_code:
        package = catalogue.packages.get(package_code)
        if package is None:
            raise DomainError(f"unknown package {package_code!r}")
        buckets = package_buckets(package, f"{msisdn}-open-{package.code}", now)
        acc.buckets = {b.id: b for b in buckets}
    event = LedgerEvent(
        f"{msisdn}#provisioned",
        msisdn,
        "provisioned",
        acc.wallet,
        acc.wallet,
        now,
        "open",
        package_code or "",
        _bucket_tuples(buckets),
    )
    return _finish(acc, catalogue.policy, now, event)


REFERENCES_KEPT = 32


def top_up(
    account: Account,
    amount: int,
    reference: str,
    policy: ChargingPolicy,
    now: int,
    *,
    hold: bool = False,
) -> AccountChange:
    """Credit the wallet; a repeat of one of the last 32 references, or of a held one, is
    recognised and changes nothing.

    The last 32 are for retries that come soon (a lost answer). `hold=True` is for a top-up whose
    once-only decision lives elsewhere and is not durable yet (a voucher: credited in the record
    after this commit): its reference is held, never pruned by count, so a retry after a crash
    between the two commits does not credit it again, until `release_reference` once that other
    fact is durable.
    """
    if amount <= 0:
        raise DomainError("a top-up must be a positive amount")
    if reference in account.recent_references or reference in account.held_references:
        return AccountChange(account, [], applied=False)
    acc = account.copy()
    acc.wallet += amount
    if hold:
        acc.held_references = (*acc.held_references, reference)
    else:
        acc.recent_references = (*acc.recent_references, reference)[-REFERENCES_KEPT:]
    event = LedgerEvent(
        f"{acc.msisdn}#topup#{reference}", acc.msisdn, "topup", amount, acc.wallet, now, reference
    )
    return _finish(acc, policy, now, event)


def release_reference(account: Account, reference: str) -> AccountChange:
    """Forget a held top-up reference (its once-only fact is now durable elsewhere). No money
    moves, so no ledger event; not applied when the reference is not held."""
    if reference not in account.held_references:
        return AccountChange(account, [], applied=False)
    acc = account.copy()
    acc.held_references = tuple(r for r in acc.held_references if r != reference)
    acc.revision += 1
    return AccountChange(acc, [])


def buy_package(
    account: Account, package: Package, reference: str, policy: ChargingPolicy, now: int
) -> AccountChange:
    """Pay a package from the wallet and add its buckets, both or neither."""
    buckets = package_buckets(package, reference, now)
    if any(b.id in account.buckets for b in buckets):
        return AccountChange(account, [], applied=False)
    if account.status is not Status.ACTIVE:
        raise DomainError("the subscriber is suspended")
    if account.available_money() < package.price:
        raise InsufficientFunds(
            f"package {package.code} costs {package.price} kuruş, available {account.available_money()}"
        )
    acc = account.copy()
    acc.wallet -= package.price
    acc.buckets.update((b.id, b) for b in buckets)
    event = LedgerEvent(
        f"{acc.msisdn}#package#{reference}",
        acc.msisdn,
        "package",
        -package.price,
        acc.wallet,
        now,
        reference,
        package.code,
        _bucket_tuples(buckets),
    )
    return _finish(acc, policy, now, event)


def renew_package(
    account: Account, package: Package, ended_at: int, policy: ChargingPolicy, now: int
) -> AccountChange:
    """The package whose period ended at `ended_at` bought again from the wallet, as the subscriber
    chose, with a notice either way in the same commit: "package-renewed", or, when the wallet
    cannot pay (or the subscriber is suspended), "package-renewal-failed" and nothing else changes.
    Once per period: the reference names the period, so a repeat is a no-op and the notices' ids
    are the same (told once)."""
    reference = f"renew:{package.code}:{ended_at}"
    notice_id = f"{account.msisdn}#{reference}"
    try:
        change = buy_package(account, package, reference, policy, now)
    except DomainError:  # no money, or suspended: say so, change nothing else
        acc = account.copy()
        acc.revision += 1
        failed = NotificationEvent(
            f"{notice_id}#failed", acc.msisdn, "package-renewal-failed", now,
            package=package.code, wallet=acc.wallet, valid_until=ended_at,
        )  # fmt: skip
        return AccountChange(acc, [failed])
    if not change.applied:
        return change
    ends = now + package.validity_days * DAY
    renewed = NotificationEvent(
        f"{notice_id}#renewed", change.account.msisdn, "package-renewed", now,
        package=package.code, wallet=change.account.wallet, valid_until=ends,
    )  # fmt: skip
    return AccountChange(change.account, [*change.events, renewed])


def set_status(
    account: Account, status: Status, reference: str, policy: ChargingPolicy, now: int
) -> AccountChange:
    acc = account.copy()
    acc.status = status
    event = LedgerEvent(
        f"{acc.msisdn}#status#{reference}",
        acc.msisdn,
        "status",
        0,
        acc.wallet,
        now,
        reference,
        status=status.value,
    )
    return _finish(acc, policy, now, event)
