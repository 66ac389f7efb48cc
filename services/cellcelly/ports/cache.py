"""The lookup cache: who a subscriber is (exists, status), fast, in front of the balance store.

Who looks a subscriber up through it: the DGW only (`dgw/gateway.py`: an unknown MSISDN is
answered 5030 without a trip to the OCS). The other services need more than "exists / status" and
go to the store itself: the OCS charges against it (a cached status could let a suspended
subscriber charge), SMS and IVR tell live balances (not cacheable), the MW reads the record.

On an event loop the cache is read with `lookup_nowait` (a hit is answered there and then,
without a coroutine; a miss is a future) or `await lookup(...)`: neither blocks the loop, a miss
goes to the member and the loader (`BalanceStore.get_async`) off it, and concurrent misses for one
MSISDN load once. `get` is the blocking form for callers off any loop (tools, tests).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class SubscriberInfo:
    msisdn: str
    status: str  # "active" | "suspended"


class SubscriberCache(Protocol):
    def lookup_nowait(self, msisdn: str) -> SubscriberInfo | None | asyncio.Future[SubscriberInfo | None]:
        """On a running loop: the subscriber (None: no such MSISDN) when this process holds the
        answer, else a future of it shared by every concurrent caller (await it shielded: one
        caller's cancellation must not cancel the others' load)."""

    async def lookup(self, msisdn: str) -> SubscriberInfo | None:
        """The subscriber, or None when there is no such MSISDN, without blocking the loop."""

    def get(self, msisdn: str) -> SubscriberInfo | None:
        """The subscriber, or None when there is no such MSISDN (blocking: not on a loop)."""

    def invalidate(self, msisdn: str) -> None:
        """Forget what is cached for this MSISDN (it was created, changed or removed)."""
