"""Self-care use cases shared by the channels: the balance a subscriber asks for."""

from __future__ import annotations

import time
from collections.abc import Callable

from cellcelly.domain.balance_summary import BalanceSummary, summarise
from cellcelly.ports.balance_store import BalanceStore


class StoreBalanceLookup:
    """BalanceLookup on the real-time balance store (in the process that holds it, or VoltDB)."""

    def __init__(self, store: BalanceStore, clock: Callable[[], float] = time.time) -> None:
        self.store, self.clock = store, clock

    async def __call__(self, msisdn: str) -> BalanceSummary | None:
        account = self.store.get(msisdn)
        return None if account is None else summarise(account, int(self.clock()))
