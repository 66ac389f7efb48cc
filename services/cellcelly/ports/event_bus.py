"""The event bus: usage, subscriber lifecycle and notification events between services.

Adapters: `cellcelly.adapters.bus_embedded` (a durable log in files, the default for `make run`)
and `cellcelly.adapters.bus_kafka` (aiokafka). Every adapter must pass
`tests/contract/event_bus_contract.py`.

Semantics (Kafka's, which the embedded log copies): topics are split into partitions; a record's
key (the subscriber's MSISDN) picks its partition, so one subscriber's events stay in order;
consumers in a group share the partitions and commit offsets explicitly, after they have done
their work, so a crash re-delivers what was not committed (at least once; consumers make it
exactly once in effect by being idempotent on the event id).

A tail (`bus.tail(topics)`) is the other way to read: no group, every partition, from the end as it
was when the tail started; it sees every record published after that and commits nothing. It is
for state every process must see whole and may rebuild from nothing (a DGW must hear of every
top-up, whichever replica holds the session; caches start empty, so what came before does not
matter): a group would share the partitions out, so each replica would hear only part.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from cellcelly.ports.bus_records import Outgoing, Record

__all__ = [
    "DEAD_LETTER",
    "LEDGER",
    "NOTIFICATIONS",
    "SUBSCRIBER",
    "TOPICS",
    "USAGE",
    "EventBus",
    "EventConsumer",
    "EventTail",
    "Outgoing",
    "Record",
]

USAGE = "cellcelly.usage.v1"
LEDGER = "cellcelly.ledger.v1"  # wallet and allowance changes: top-ups, packages, provisioning
SUBSCRIBER = "cellcelly.subscriber.v1"  # lifecycle: created, changed, suspended, resumed
NOTIFICATIONS = "cellcelly.notifications.v1"
DEAD_LETTER = "cellcelly.dead-letter.v1"  # poison messages, with where they came from
TOPICS = (USAGE, LEDGER, SUBSCRIBER, NOTIFICATIONS, DEAD_LETTER)


class EventConsumer(Protocol):
    async def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[Record]:
        """The next records of the group's partitions (possibly none after `timeout` seconds)."""

    async def commit(self, records: Sequence[Record]) -> None:
        """Mark these records (and everything before them in their partitions) as done."""

    async def lag(self) -> int:
        """Records in the subscribed topics not yet committed by this group."""

    async def rewind(self) -> None:
        """Go back to the group's committed offsets, so the next polls deliver again whatever was
        polled but not committed (after a failed write: else later commits would skip it)."""

    async def close(self) -> None: ...


class EventTail(Protocol):
    async def start(self) -> None:
        """Fix where the tail begins: the end of every partition now (the first poll does it when
        nobody called this)."""

    async def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[Record]:
        """Records published to the topics since the tail started (possibly none after `timeout`
        seconds); each once, in order within a partition."""

    async def close(self) -> None: ...


class EventBus(Protocol):
    async def publish(self, batch: Sequence[Outgoing]) -> None:
        """Append the batch; when this returns, every record is durable on the bus (`send`, then
        `flush`)."""

    async def send(self, batch: Sequence[Outgoing]) -> None:
        """Append the batch, in order after what was sent before, without waiting for it to be
        durable: readers may see it at once, and a crash before the next `flush` may lose it."""

    async def flush(self) -> None:
        """When this returns, everything sent before it was called is durable on the bus."""

    def consumer(self, group: str, topics: Sequence[str]) -> EventConsumer: ...

    def tail(self, topics: Sequence[str]) -> EventTail:
        """Every partition of `topics`, from their end on `start`, for this reader alone (see above)."""

    async def close(self) -> None: ...
