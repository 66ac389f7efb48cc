"""The real-time balance store: where charging reads and atomically changes a subscriber's account.

Adapters: `cellcelly.adapters.balance_embedded` (in-process, journalled to disk) and
`cellcelly.adapters.balance_voltdb` (VoltDB, partitioned by subscriber). Every adapter must pass
`tests/contract/balance_store_contract.py`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from cellcelly.domain.account import Account
from cellcelly.domain.charging import NotificationEvent, UsageEvent
from cellcelly.domain.provisioning import LedgerEvent

Event = UsageEvent | LedgerEvent | NotificationEvent
T = TypeVar("T")


@dataclass(slots=True)
class Commit:
    """What to write in one atomic step: the new account, the sessions it changed or dropped,
    and the events for the outbox. Readers see all of it or none of it."""

    account: Account
    changed_sessions: Collection[str] = ()
    removed_sessions: Collection[str] = ()
    events: Sequence[Event] = field(default_factory=tuple)

    # written out: mypyc compiles this one, while a dataclass's own runs as interpreted Python
    def __init__(
        self,
        account: Account,
        changed_sessions: Collection[str] = (),
        removed_sessions: Collection[str] = (),
        events: Sequence[Event] = (),
    ) -> None:
        self.account = account
        self.changed_sessions = changed_sessions
        self.removed_sessions = removed_sessions
        self.events = events


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    # unique and never reused; strictly increasing in commit order for each subscriber. Across
    # subscribers only roughly: a partitioned store (VoltDB) has no global commit order, which
    # is why `ack` takes exact seqs
    seq: int
    event: dict[str, Any]  # the event as it goes on the bus (see cellcelly.codec)

    # written out: mypyc compiles this one, while a dataclass's own runs as interpreted Python
    def __init__(self, seq: int, event: dict[str, Any]) -> None:
        object.__setattr__(self, "seq", seq)
        object.__setattr__(self, "event", event)


class BalanceStore(Protocol):
    """Blocking calls, and the same operations as `*_async` coroutines for code on an event loop.

    `inline` says which to use on a loop: True when calls never wait on I/O (the embedded store,
    in memory: a coroutine or a thread hop would only add cost, so callers call it directly);
    False when they wait on a server (VoltDB): a loop must use the coroutines, which never block
    it, and the blocking calls are for threads and tools."""

    inline: bool

    def get(self, msisdn: str) -> Account | None:
        """The last committed account. Callers must not change it."""

    def session_owner(self, session_id: str) -> str | None:
        """The subscriber a live or recently finished session belongs to."""

    def transact(self, msisdn: str, fn: Callable[[Account | None], tuple[T, Commit | None]]) -> T:
        """Run `fn` on the subscriber's current account and commit what it returns atomically.

        Operations on one subscriber are serialised; `fn` may run more than once when the store
        retries after losing an optimistic race, so it must be pure. `fn` raising commits nothing;
        a commit that cannot be made durable raises StoreError and nothing of it is ever visible.
        """

    def msisdns(self) -> Iterator[str]:
        """Every subscriber in the store (for reconciliation and tooling)."""

    def outbox_parts(self) -> list[str]:
        """The outbox's parts: each subscriber's events all live in one of them, so a relay may
        read and acknowledge a part at a time and keep each subscriber's order. On VoltDB a part
        is a partition (its key), and a call on one part stops no other; the embedded store has
        one part. The list may change (a cluster rebalanced): read it again now and then."""

    def outbox(self, limit: int = 1000, after: int = 0, part: str | None = None) -> list[OutboxEntry]:
        """Events not yet acknowledged in seq order (oldest first for each subscriber), at most
        `limit`, only those with a seq above `after`; of one `part` (`outbox_parts`), or of all.
        `after` is a filter, not a cursor: an event committed later on another partition may
        carry a smaller seq than ones already read."""

    def outbox_size(self) -> int:
        """How many events wait in the outbox (cheap: for metrics and back-pressure)."""

    def ack(self, seqs: Iterable[int], part: str | None = None) -> None:
        """The relay has published exactly these events (their seqs): they leave the outbox.

        Exact seqs, never "everything up to": events committed on another partition after an
        `outbox` read can carry smaller seqs than the ones it returned, and a range would take
        them unpublished. Seqs unknown or already acknowledged are ignored. With a `part`, only
        the seqs read from that part are sure to be taken (a partitioned store looks nowhere else)."""

    async def get_async(self, msisdn: str) -> Account | None: ...

    async def session_owner_async(self, session_id: str) -> str | None: ...

    async def transact_async(
        self, msisdn: str, fn: Callable[[Account | None], tuple[T, Commit | None]]
    ) -> T: ...

    async def outbox_parts_async(self) -> list[str]: ...

    async def outbox_async(
        self, limit: int = 1000, after: int = 0, part: str | None = None
    ) -> list[OutboxEntry]: ...

    async def outbox_size_async(self) -> int: ...

    async def ack_async(self, seqs: Iterable[int], part: str | None = None) -> None: ...

    def close(self) -> None: ...


async def off_loop(store: BalanceStore, fn: Callable[..., T], *args: Any) -> T:
    """Run a use case that calls the store's blocking methods (admin and self-care paths, rare)
    from a coroutine: directly on an inline store, else on a worker thread so the loop runs on."""
    if store.inline:
        return fn(*args)
    return await asyncio.to_thread(fn, *args)
