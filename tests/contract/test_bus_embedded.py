"""The event bus contract on the embedded file bus; `other` is a second EmbeddedBus on the same
directory, as another process on the same data dir would open it."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import struct
import threading
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from event_bus_contract import EventBusContract
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cellcelly.adapters.bus_embedded import EmbeddedBus, partition_of
from cellcelly.ports.event_bus import Outgoing, Record

pytestmark = [pytest.mark.contract, pytest.mark.timeout(60)]


class TestEmbeddedBus(EventBusContract):
    @pytest.fixture
    async def bus(self, tmp_path: Path) -> AsyncIterator[EmbeddedBus]:
        bus = EmbeddedBus(tmp_path / "bus")
        yield bus
        await bus.close()

    @pytest.fixture
    async def other(self, tmp_path: Path) -> AsyncIterator[EmbeddedBus]:
        bus = EmbeddedBus(tmp_path / "bus")
        yield bus
        await bus.close()

    @pytest.fixture
    def topic(self) -> str:
        return f"test.tail.{uuid.uuid4().hex[:8]}"


# --- the file bus's own reading: a batch is one read of its span, sliced -----------------------

records = st.lists(
    st.tuples(st.text(min_size=1, max_size=20), st.binary(max_size=300)), min_size=1, max_size=60
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    published=records,
    sizes=st.lists(st.integers(1, 25), min_size=1, max_size=8),
    committed=st.floats(0, 1),
    order=st.randoms(use_true_random=False),
)
async def test_polled_in_any_batch_sizes_each_record_comes_once_whole_and_in_order(
    tmp_path: Path,
    published: list[tuple[str, bytes]],
    sizes: list[int],
    committed: float,
    order: random.Random,
) -> None:
    """...and committing what was polled first, in any order, makes the group's next member start
    right after it in each partition."""
    bus = EmbeddedBus(tmp_path / f"bus-{uuid.uuid4().hex[:8]}", partitions=2)
    consumer = bus.consumer("g", ["t"])
    try:
        await bus.publish([Outgoing("t", key, value) for key, value in published])
        got: list[Record] = []
        for size in itertools.cycle(sizes):
            batch = await consumer.poll(size, timeout=0)
            if not batch:
                break
            assert len(batch) <= size
            got += batch
        for partition in range(2):
            mine = [(r.key, r.value) for r in got if r.partition == partition]
            assert mine == [(k, v) for k, v in published if partition_of(k, 2) == partition]
            assert [r.offset for r in got if r.partition == partition] == list(range(len(mine)))
        done = int(len(got) * committed)  # a prefix of each partition: polls come in order
        await consumer.commit(order.sample(got[:done], done))
        await consumer.close()
        consumer = bus.consumer("g", ["t"])
        rest = await consumer.poll(len(got) + 1, timeout=0)
        assert sorted((r.partition, r.offset) for r in rest) == sorted(
            (r.partition, r.offset) for r in got[done:]
        )
    finally:
        await consumer.close()
        await bus.close()


async def test_a_record_still_being_written_is_read_only_once_whole(tmp_path: Path) -> None:
    """A record appended in two writes (another process's, or one torn by a crash and then
    written again) is not read until its last byte is there; the records before it are."""
    bus = EmbeddedBus(tmp_path / "bus", partitions=1)
    consumer = bus.consumer("g", ["t"])
    try:
        await bus.publish([Outgoing("t", "k", b"first")])
        frame = b"".join([struct.pack("!I", 1), b"k", struct.pack("!I", 6), b"second"])
        path = tmp_path / "bus" / "t-0.log"
        with path.open("ab") as fh:
            fh.write(frame[:7])
        assert [r.value for r in await consumer.poll(10, timeout=0)] == [b"first"]
        assert await consumer.poll(10, timeout=0) == []
        with path.open("ab") as fh:
            fh.write(frame[7:])
        again = await consumer.poll(10, timeout=0)
        assert [(r.offset, r.key, r.value) for r in again] == [(1, "k", b"second")]
    finally:
        await consumer.close()
        await bus.close()


def _open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts open files in /proc (Linux)")
async def test_closed_readers_leave_no_file_open(tmp_path: Path) -> None:
    """Readers keep their partitions' files open between polls (one `pread` a batch); closing
    them closes those files, so a process that opens many leaks none."""
    bus = EmbeddedBus(tmp_path / "bus")
    await bus.publish([Outgoing("t", str(i), b"v") for i in range(20)])
    before = _open_files()
    for _ in range(5):
        consumer, tail = bus.consumer("g", ["t"]), bus.tail(["t"])
        assert len(await consumer.poll(100, timeout=0)) == 20
        await tail.poll(100, timeout=0)
        assert _open_files() > before  # they read through open files
        await consumer.close()
        await tail.close()
        assert _open_files() == before
    await bus.close()


async def test_a_read_that_returns_less_than_asked_is_read_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`pread` may return fewer bytes than asked (a signal, a file system's own limit): the reader
    asks again for the rest, so a batch is whole whatever each call returns."""
    bus = EmbeddedBus(tmp_path / "bus", partitions=1)
    published = [Outgoing("t", f"k{i}", bytes([i]) * (50 + i)) for i in range(30)]
    await bus.publish(published)
    whole = os.pread
    calls: list[int] = []

    def stingy(fd: int, size: int, offset: int) -> bytes:
        calls.append(size)
        return whole(fd, min(size, 7), offset)

    monkeypatch.setattr(os, "pread", stingy)
    consumer = bus.consumer("g", ["t"])
    try:
        got = await consumer.poll(100, timeout=0)
        assert [(r.key, r.value) for r in got] == [(o.key, o.value) for o in published]
        assert len(calls) > 100  # the point: many short reads made whole
    finally:
        await consumer.close()
        await bus.close()


# --- sending and flushing apart: the relay sends every look and flushes now and then ------------


async def test_a_send_is_read_at_once_and_a_flush_syncs_each_file_written_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    bus = EmbeddedBus(tmp_path / "bus", partitions=2)
    keys = [k for k in (f"k{i}" for i in range(20)) if partition_of(k, 2) == 0][:2]
    await bus.send([Outgoing("t", keys[0], b"one")])
    await bus.send([Outgoing("t", keys[1], b"two"), Outgoing("u", keys[0], b"three")])
    # another process's reader (a second bus on the directory) sees both before any flush
    reader = EmbeddedBus(tmp_path / "bus", partitions=2).consumer("g", ["t", "u"])
    got = await reader.poll(timeout=0.2)
    assert sorted(r.value for r in got) == [b"one", b"three", b"two"]
    assert synced == []
    await bus.flush()
    assert len(synced) == len(set(synced)) == 2  # t-0 and u-0: each written file once
    await bus.flush()
    assert len(synced) == 2  # nothing sent since: nothing to sync
    await bus.send([Outgoing("t", keys[0], b"four")])
    await bus.close()  # a close syncs what was sent
    assert len(synced) == 3
    await reader.close()


async def test_a_flush_returns_only_once_a_flush_already_syncing_is_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second flush finds nothing new to sync, but what it must guarantee is being synced by
    the first: it may not return before that."""
    entered, release = threading.Event(), threading.Event()

    def slow_fsync(fd: int) -> None:
        entered.set()
        assert release.wait(10)

    monkeypatch.setattr(os, "fsync", slow_fsync)
    bus = EmbeddedBus(tmp_path / "bus")
    await bus.send([Outgoing("t", "k", b"v")])
    first = asyncio.ensure_future(bus.flush())
    assert await asyncio.to_thread(entered.wait, 10)
    second = asyncio.ensure_future(bus.flush())
    await asyncio.sleep(0.2)
    assert not first.done() and not second.done()
    release.set()
    await asyncio.wait_for(asyncio.gather(first, second), 10)
    await bus.close()
