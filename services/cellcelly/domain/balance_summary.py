"""What a subscriber asks for on every channel: how much is left, of what, until when.

Web, SMS "KALAN" and the IVR all say the same thing, so they all start from this one summary of
the real-time account (after live reservations: what can still be spent now).
"""

from __future__ import annotations

from dataclasses import dataclass

from cellcelly.domain.account import Account
from cellcelly.domain.units import Service


@dataclass(frozen=True, slots=True)
class Allowance:
    """One service's package allowance, summed over the buckets usable now."""

    service: Service
    remaining: int  # base units: seconds, messages, octets
    total: int
    valid_until: int | None  # when the soonest-ending bucket that still has units ends; None: none left

    @property
    def used(self) -> int:
        return self.total - self.remaining


@dataclass(frozen=True, slots=True)
class BalanceSummary:
    msisdn: str
    status: str
    wallet: int  # kuruş available now (balance − live reservations)
    allowances: tuple[Allowance, ...]  # voice, sms, data: always all three, in that order
    packages: tuple[str, ...]  # codes of the packages with a usable bucket, soonest ending first

    def allowance(self, service: Service) -> Allowance:
        return next(a for a in self.allowances if a.service is service)


ORDER = (Service.VOICE, Service.SMS, Service.DATA)


def summarise(account: Account, now: int) -> BalanceSummary:
    usable = sorted(
        (b for b in account.buckets.values() if b.usable(now)), key=lambda b: (b.valid_until, b.id)
    )
    allowances = []
    for service in ORDER:
        buckets = [b for b in usable if b.service is service]
        remaining = sum(max(0, account.available_units(b, now)) for b in buckets)
        ends = [b.valid_until for b in buckets if account.available_units(b, now) > 0]
        allowances.append(
            Allowance(service, remaining, sum(b.total for b in buckets), min(ends) if ends else None)
        )
    packages = tuple(dict.fromkeys(b.package for b in usable))
    return BalanceSummary(
        account.msisdn, account.status.value, account.available_money(), tuple(allowances), packages
    )
