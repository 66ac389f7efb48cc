"""The contract every event bus adapter must pass (see cellcelly.ports.event_bus), for now its
tail: the group-less reader every process gets whole.

Subclass `EventBusContract` in a `test_*.py` module and give it three fixtures: `bus` (the bus
under test), `other` (a second bus on the same log or cluster: another process's client) and
`topic` (a topic name no other test uses). The tests use only the `EventBus` port.
"""

from __future__ import annotations

import time
from collections import defaultdict

import orjson

from cellcelly.ports.event_bus import EventBus, EventConsumer, EventTail, Outgoing, Record


def events(topic: str, n: int, subscribers: int = 20, tag: str = "") -> list[Outgoing]:
    """`n` records over `subscribers` keys (so over every partition), numbered per key."""
    seq: dict[str, int] = defaultdict(int)
    out = []
    for i in range(n):
        key = f"53500{i % subscribers:05d}"
        out.append(Outgoing(topic, key, orjson.dumps({"key": key, "seq": seq[key], "tag": tag})))
        seq[key] += 1
    return out


async def drain(reader: EventTail | EventConsumer, n: int, deadline: float = 20.0) -> list[Record]:
    got: list[Record] = []
    end = time.monotonic() + deadline
    while len(got) < n:
        assert time.monotonic() < end, f"only {len(got)} of {n} records within {deadline}s"
        got += await reader.poll(max_records=500, timeout=0.3)
    return got


async def quiet(reader: EventTail, seconds: float) -> list[Record]:
    got: list[Record] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        got += await reader.poll(timeout=0.2)
    return got


def tags(records: list[Record]) -> set[str]:
    return {orjson.loads(r.value)["tag"] for r in records}


class EventBusContract:
    async def test_a_tail_sees_only_what_comes_after_it_started_every_partition_in_key_order(
        self, bus: EventBus, topic: str
    ) -> None:
        await bus.publish(events(topic, 40, tag="before"))
        tail = bus.tail([topic])
        await tail.start()
        await bus.publish(events(topic, 200, tag="after"))
        got = await drain(tail, 200)
        got += await quiet(tail, 0.6)
        assert tags(got) == {"after"}, "a tail begins at the end: nothing from before it started"
        assert len(got) == 200 and len({(r.partition, r.offset) for r in got}) == 200
        assert len({r.partition for r in got}) > 1, "20 keys spread over the partitions"
        seqs: dict[str, list[int]] = defaultdict(list)
        for record in got:
            seqs[record.key].append(orjson.loads(record.value)["seq"])
        assert all(seq == list(range(10)) for seq in seqs.values()), seqs
        await tail.close()

    async def test_every_tail_sees_every_record_where_a_group_shares_them(
        self, bus: EventBus, other: EventBus, topic: str
    ) -> None:
        """Two DGW replicas: each must hear of every change (a group would split the partitions)."""
        first, second = bus.tail([topic]), other.tail([topic])
        await first.start()
        await second.start()
        sent = events(topic, 120, tag="both")
        await bus.publish(sent[:60])
        await other.publish(sent[60:])  # from another client too
        a, b = await drain(first, 120), await drain(second, 120)
        assert sorted(r.value for r in a) == sorted(r.value for r in b) == sorted(o.value for o in sent)
        await first.close()
        await second.close()

    async def test_a_tail_commits_nothing_and_a_new_tail_starts_at_the_new_end(
        self, bus: EventBus, topic: str
    ) -> None:
        tail = bus.tail([topic])
        await tail.start()
        await bus.publish(events(topic, 30, tag="one"))
        assert len(await drain(tail, 30)) == 30
        await tail.close()
        again = bus.tail([topic])
        await again.start()
        assert await quiet(again, 0.6) == [], "a new tail replays nothing"
        await bus.publish(events(topic, 10, tag="two"))
        got = await drain(again, 10)
        assert tags(got) == {"two"}
        await again.close()
        # and a group on the same topic is not moved by any tail: it reads from the beginning
        group = bus.consumer(f"contract-{topic}", [topic])
        seen = await drain(group, 40)
        assert tags(seen) == {"one", "two"}
        await group.close()

    async def test_a_tail_started_before_its_topic_exists_gets_the_first_records(
        self, bus: EventBus, other: EventBus, topic: str
    ) -> None:
        tail = bus.tail([topic, f"{topic}.second"])
        await tail.start()
        await other.publish(events(f"{topic}.second", 5, tag="first"))
        got = await drain(tail, 5)
        assert tags(got) == {"first"} and {r.topic for r in got} == {f"{topic}.second"}
        await tail.close()

    async def test_sends_keep_their_order_and_a_flush_returns_with_all_of_them(
        self, bus: EventBus, topic: str
    ) -> None:
        """What the outbox relay does: a send a look, a flush now and then; a group reads every
        record once, each key's in the order sent."""
        sent = events(topic, 90, subscribers=9, tag="sent")
        for part in (sent[:30], sent[30:31], sent[31:]):
            await bus.send(part)
        await bus.flush()
        await bus.flush()  # nothing new: returns as well
        group = bus.consumer(f"contract-{topic}", [topic])
        seen = await drain(group, 90)
        assert sorted(r.value for r in seen) == sorted(o.value for o in sent)
        seqs: dict[str, list[int]] = defaultdict(list)
        for record in seen:
            seqs[record.key].append(orjson.loads(record.value)["seq"])
        assert all(seq == list(range(10)) for seq in seqs.values()), seqs
        await group.close()
