"""The lookup cache: who a subscriber is, fast (Hazelcast in the distributed stack, later)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class SubscriberInfo:
    msisdn: str
    status: str  # "active" | "suspended"


class SubscriberCache(Protocol):
    def get(self, msisdn: str) -> SubscriberInfo | None:
        """The subscriber, or None when there is no such MSISDN."""

    def invalidate(self, msisdn: str) -> None:
        """Forget what is cached for this MSISDN (it was created, changed or removed)."""
