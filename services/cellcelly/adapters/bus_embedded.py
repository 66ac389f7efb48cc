"""The embedded event bus: a durable, partitioned log in files (the default for `make run`).

One append-only file per topic partition; a record is `<key length><key><value length><value>`
and its offset is its index. `send` writes a batch (readers see it at once) and `flush` fsyncs
every file written since the last one; `publish` is the two. A group's
committed offsets live in a small JSON file replaced atomically. Consumers read the files
themselves, so a consumer in another process sees what a publisher appended; consumers of one
group in this process share the partitions between them, as Kafka's would. A tail reads every
partition from where its files ended when it started, keeping its positions in memory only.
"""

from __future__ import annotations

import asyncio
import os
import struct
import threading
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import orjson

from cellcelly.ports.event_bus import EventConsumer, EventTail, Outgoing, Record

_LEN = struct.Struct("!I")
PARTITIONS = 4


def partition_of(key: str, partitions: int = PARTITIONS) -> int:
    return zlib.crc32(key.encode()) % partitions


class _Partition:
    """The file of one topic partition and the positions of its records.

    Kept open and read with `pread`: a batch is one read of its span, sliced here. An open a batch
    and a seek and three buffered reads a record made polling a seventh of the SF's CPU an event
    (3.4-3.7 of 24-27 µs; 2.0-2.1 now, with the compiled `Record`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.positions: list[int] = []
        self.size = 0
        self._fd = -1
        self.refresh()

    def refresh(self) -> None:
        """Index records appended since the last look (by us or by another process)."""
        if self._fd < 0:
            try:
                self._fd = os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:
                return  # nothing published to it yet
        size = os.fstat(self._fd).st_size
        if size <= self.size:
            return
        data = _pread(self._fd, size - self.size, self.size)
        offset = 0
        while offset + 4 <= len(data):
            (klen,) = _LEN.unpack_from(data, offset)
            if offset + 4 + klen + 4 > len(data):
                break
            (vlen,) = _LEN.unpack_from(data, offset + 4 + klen)
            end = offset + 8 + klen + vlen
            if end > len(data):
                break  # a record still being written (or torn by a crash): not visible yet
            self.positions.append(self.size + offset)
            offset = end
        self.size += offset

    def read(self, start: int, limit: int) -> list[tuple[int, str, bytes]]:
        positions = self.positions
        stop = min(len(positions), start + limit)
        if start >= stop:
            return []
        first = positions[start]
        data = _pread(self._fd, (positions[stop] if stop < len(positions) else self.size) - first, first)
        found: list[tuple[int, str, bytes]] = []
        unpack = _LEN.unpack_from
        for index in range(start, stop):
            at = positions[index] - first
            (klen,) = unpack(data, at)
            at += 4
            key = data[at : at + klen].decode()
            at += klen
            (vlen,) = unpack(data, at)
            at += 4
            found.append((index, key, data[at : at + vlen]))
        return found

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _pread(fd: int, size: int, offset: int) -> bytes:
    """`size` bytes at `offset` of a file known to hold them (a read may return fewer at once)."""
    data = os.pread(fd, size, offset)
    while len(data) < size:
        more = os.pread(fd, size - len(data), offset + len(data))
        if not more:
            raise OSError(f"the bus file ended {size - len(data)} bytes early")
        data += more
    return data


class EmbeddedBus:
    def __init__(self, directory: str | Path, *, partitions: int = PARTITIONS) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "groups").mkdir(exist_ok=True)
        self.partitions = partitions
        self._lock = threading.Lock()
        self._members: dict[str, list[EmbeddedConsumer]] = {}
        self._published = asyncio.Event()
        self._fds: dict[tuple[str, int], int] = {}  # each partition's file, for appending
        self._dirty: set[int] = set()  # the files written since the last flush
        self._syncing = threading.Lock()

    def _file(self, topic: str, partition: int) -> Path:
        return self.dir / f"{topic}-{partition}.log"

    async def publish(self, batch: Sequence[Outgoing]) -> None:
        await self.send(batch)
        await self.flush()

    async def send(self, batch: Sequence[Outgoing]) -> None:
        """Written here, on the caller's loop: a few page-cache writes, cheaper than a thread's hop."""
        if not batch:
            return
        self._append(batch)
        self._published.set()
        self._published = asyncio.Event()

    async def flush(self) -> None:
        """One fsync for each file written since the last flush, in a thread. The stand-alone OCS's
        relay sends every 10 ms; an fsync of each partition every send (73 µs of CPU each here) was
        7% of that process's CPU (perf, `make bench`'s e2e rows). It flushes every 50 ms now."""
        if self._dirty or self._syncing.locked():  # a sync under way may hold what we sent
            await asyncio.to_thread(self._sync)

    def _sync(self) -> None:
        # one flush at a time: a second one must not return while the first still syncs its files
        with self._syncing:
            with self._lock:
                dirty, self._dirty = self._dirty, set()
            for fd in dirty:
                os.fsync(fd)

    def _append(self, batch: Sequence[Outgoing]) -> None:
        # grouped by (topic, partition): a Path made per event cost the charging process ~10 µs each
        grouped: dict[tuple[str, int], list[bytes]] = {}
        pack = _LEN.pack
        for item in batch:
            key = item.key.encode()
            frame = pack(len(key)) + key + pack(len(item.value)) + item.value
            where = (item.topic, partition_of(item.key, self.partitions))
            frames = grouped.get(where)
            if frames is None:
                grouped[where] = [frame]
            else:
                frames.append(frame)
        with self._lock:
            for where, frames in grouped.items():
                fd = self._fds.get(where)
                if fd is None:
                    # kept open: an open, a Path and a close a partition a batch were a tenth of the
                    # OCS's CPU (perf) where its relay publishes here (`make run`, the e2e rows)
                    path = self._file(*where)
                    fd = self._fds[where] = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                os.write(fd, b"".join(frames))
                self._dirty.add(fd)

    def consumer(self, group: str, topics: Sequence[str]) -> EmbeddedConsumer:
        consumer = EmbeddedConsumer(self, group, tuple(topics))
        self._members.setdefault(group, []).append(consumer)
        return consumer

    def tail(self, topics: Sequence[str]) -> EmbeddedTail:
        return EmbeddedTail(self, tuple(topics))

    def _leave(self, consumer: EmbeddedConsumer) -> None:
        members = self._members.get(consumer.group, [])
        if consumer in members:
            members.remove(consumer)

    def assignment(self, consumer: EmbeddedConsumer) -> list[tuple[str, int]]:
        """This consumer's share of its topics' partitions (round robin over the group's members)."""
        members = self._members.get(consumer.group, [consumer])
        index = members.index(consumer) if consumer in members else 0
        every = [(t, p) for t in consumer.topics for p in range(self.partitions)]
        return [tp for i, tp in enumerate(every) if i % len(members) == index]

    def committed(self, group: str) -> dict[str, int]:
        path = self.dir / "groups" / f"{group}.json"
        try:
            data: dict[str, int] = orjson.loads(path.read_bytes())
            return data
        except FileNotFoundError:
            return {}

    def commit(self, group: str, offsets: dict[str, int]) -> None:
        with self._lock:
            current = self.committed(group)
            for tp, offset in offsets.items():
                current[tp] = max(current.get(tp, 0), offset)
            path = self.dir / "groups" / f"{group}.json"
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(orjson.dumps(current))
            os.replace(tmp, path)

    async def wait_for_publish(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._published.wait(), timeout)
        except TimeoutError:
            pass

    async def close(self) -> None:
        self._members.clear()
        self._sync()
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()


class _FileReader:
    """What a group member and a tail share: the partition files they read, and a poll that waits
    for a publish when nothing is new."""

    def __init__(self, bus: EmbeddedBus, topics: tuple[str, ...]) -> None:
        self.bus = bus
        self.topics = topics
        self._files: dict[tuple[str, int], _Partition] = {}

    def _partition(self, tp: tuple[str, int]) -> _Partition:
        if tp not in self._files:
            self._files[tp] = _Partition(self.bus._file(*tp))
        part = self._files[tp]
        part.refresh()
        return part

    def _close_files(self) -> None:
        for part in self._files.values():
            part.close()
        self._files.clear()

    def _read(
        self, tps: Iterable[tuple[str, int]], starts: dict[tuple[str, int], int], most: int
    ) -> list[Record]:
        """Up to `most` records of the partitions from `starts` on, which moves past what is read."""
        records: list[Record] = []
        for tp in tps:
            room = most - len(records)
            if room <= 0:
                break
            for offset, key, value in self._partition(tp).read(starts[tp], room):
                records.append(Record(tp[0], tp[1], offset, key, value))
                starts[tp] = offset + 1
        return records

    def _take(self, max_records: int) -> list[Record]:
        raise NotImplementedError

    async def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[Record]:
        records = self._take(max_records)
        if records or timeout <= 0:
            return records
        await self.bus.wait_for_publish(min(timeout, 0.2))
        return self._take(max_records)


class EmbeddedConsumer(_FileReader, EventConsumer):
    def __init__(self, bus: EmbeddedBus, group: str, topics: tuple[str, ...]) -> None:
        super().__init__(bus, topics)
        self.group = group
        self._positions: dict[tuple[str, int], int] = {}

    def _take(self, max_records: int) -> list[Record]:
        committed = self.bus.committed(self.group)
        assigned = self.bus.assignment(self)
        for tp in assigned:
            self._positions.setdefault(tp, committed.get(f"{tp[0]}:{tp[1]}", 0))
        return self._read(assigned, self._positions, max_records)

    async def commit(self, records: Sequence[Record]) -> None:
        offsets: dict[str, int] = {}
        for r in records:
            tp = f"{r.topic}:{r.partition}"
            offsets[tp] = max(offsets.get(tp, 0), r.offset + 1)
        if offsets:
            await asyncio.to_thread(self.bus.commit, self.group, offsets)

    async def rewind(self) -> None:
        self._positions.clear()  # the next poll starts again from the committed offsets

    async def lag(self) -> int:
        committed = self.bus.committed(self.group)
        total = 0
        for tp in [(t, p) for t in self.topics for p in range(self.bus.partitions)]:
            total += len(self._partition(tp).positions) - committed.get(f"{tp[0]}:{tp[1]}", 0)
        return total

    async def close(self) -> None:
        self.bus._leave(self)
        self._close_files()


class EmbeddedTail(_FileReader, EventTail):
    def __init__(self, bus: EmbeddedBus, topics: tuple[str, ...]) -> None:
        super().__init__(bus, topics)
        self._positions: dict[tuple[str, int], int] | None = None

    def _every(self) -> list[tuple[str, int]]:
        return [(t, p) for t in self.topics for p in range(self.bus.partitions)]

    async def start(self) -> None:
        """Take the current end of every partition as where this tail begins."""
        if self._positions is None:
            self._positions = {tp: len(self._partition(tp).positions) for tp in self._every()}

    def _take(self, max_records: int) -> list[Record]:
        assert self._positions is not None
        return self._read(self._every(), self._positions, max_records)

    async def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[Record]:
        await self.start()
        return await super().poll(max_records, timeout)

    async def close(self) -> None:
        self._close_files()
