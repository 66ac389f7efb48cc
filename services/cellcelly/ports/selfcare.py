"""What the subscriber channels (SMS, IVR, web) ask of the rest of the stack."""

from __future__ import annotations

from typing import Protocol

from cellcelly.domain.balance_summary import BalanceSummary


class BalanceLookup(Protocol):
    async def __call__(self, msisdn: str) -> BalanceSummary | None:
        """The subscriber's balance now, or None when there is no such subscriber.

        `msisdn` is the national form (10 digits starting with 5)."""
