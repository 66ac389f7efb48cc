"""The VoltDB store's per-subscriber locks on the loop (`_AsyncSubscriberLocks`): one holder at a
time, waiters served in order, and a waiter cancelled before or after its turn came never leaves
the subscriber held for good."""

from __future__ import annotations

import asyncio

import pytest

from cellcelly.adapters.balance_voltdb import _AsyncSubscriberLocks

pytestmark = pytest.mark.timeout(10)


def test_waiters_are_served_in_order_one_at_a_time() -> None:
    async def main() -> list[str]:
        locks = _AsyncSubscriberLocks()
        order: list[str] = []
        inside = 0

        async def worker(name: str) -> None:
            nonlocal inside
            await locks.acquire("A")
            inside += 1
            assert inside == 1
            order.append(name)
            await asyncio.sleep(0)
            inside -= 1
            locks.release("A")

        await asyncio.gather(*(worker(str(i)) for i in range(5)), locks.acquire("B"))
        locks.release("B")
        assert locks._held == {}  # nothing kept for subscribers nobody holds
        return order

    assert asyncio.run(main()) == ["0", "1", "2", "3", "4"]


def test_a_cancelled_waiter_never_keeps_the_subscriber() -> None:
    async def main() -> None:
        locks = _AsyncSubscriberLocks()
        await locks.acquire("A")
        before = asyncio.create_task(locks.acquire("A"))  # cancelled while it waits
        handed = asyncio.create_task(locks.acquire("A"))  # its turn comes, then it is cancelled
        last = asyncio.create_task(locks.acquire("A"))
        await asyncio.sleep(0)
        before.cancel()
        await asyncio.sleep(0)
        locks.release("A")  # skips the cancelled one: `handed` has its turn
        handed.cancel()  # ... cancelled before it ran: it must pass the turn on
        with pytest.raises(asyncio.CancelledError):
            await handed
        await asyncio.wait_for(last, 1)  # would hang if either kept the subscriber
        locks.release("A")
        assert locks._held == {}

    asyncio.run(main())
