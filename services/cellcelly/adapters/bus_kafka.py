"""The event bus on Apache Kafka, through aiokafka (`pip install 'cellcelly[kafka]'`).

    bus = KafkaBus("127.0.0.1:9092")
    await bus.publish([Outgoing(USAGE, msisdn, orjson.dumps(event))])   # durable (acks=all) on return
    consumer = bus.consumer("ocs-rating", [USAGE])
    records = await consumer.poll()
    ...
    await consumer.commit(records)

Publishing uses one idempotent producer (`enable_idempotence=True, acks="all"`), started on first
use; the record key (the subscriber's MSISDN) picks the partition with Kafka's own murmur2
partitioner, so a subscriber's events stay in order and land where a Java producer would put them.
Topics are created on first use with `partitions` partitions (an existing topic is left as it is).

Consumers never auto-commit: `commit(records)` commits, per partition, the offset after the highest
record given, so whatever was polled but not committed is delivered again after a crash or a
rebalance (at least once).

A tail (`bus.tail(topics)`) is an AIOKafkaConsumer with no group (`group_id=None`): it assigns
itself every partition of its topics, seeks each to its end offset when it starts, and commits
nothing. Partitions added to a topic later are picked up from their beginning (everything in them
is newer than the tail) within `partition_check` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # type: ignore[import-untyped]
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # type: ignore[import-untyped]
from aiokafka.errors import KafkaError, for_code  # type: ignore[import-untyped]
from aiokafka.structs import OffsetAndMetadata  # type: ignore[import-untyped]

from cellcelly.errors import BackendError
from cellcelly.ports.event_bus import Outgoing, Record


# what `Record` is made of, for a consumer and a tail alike
def _records(batches: dict[Any, list[Any]]) -> list[Record]:
    records: list[Record] = []
    for tp, items in batches.items():
        for item in items:
            key = item.key.decode() if item.key is not None else ""
            records.append(Record(tp.topic, tp.partition, item.offset, key, item.value or b""))
    return records


log = logging.getLogger(__name__)

TOPIC_ALREADY_EXISTS = 36
DEFAULT_PARTITIONS = 4


class KafkaBusError(BackendError, RuntimeError):
    """The bus could not do what was asked (broker unreachable, timed out, refused)."""


def _consume(futures: list[asyncio.Future[Any]]) -> None:
    """Retrieve the failures of abandoned sends (no "exception was never retrieved" noise)."""
    for future in futures:
        if future.done() and not future.cancelled():
            future.exception()


@dataclass(frozen=True)
class KafkaSecurity:
    """How to reach a secured cluster (SASL PLAIN/SCRAM, TLS); the default is plain TCP, no login."""

    protocol: str = "PLAINTEXT"  # PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
    sasl_mechanism: str = "SCRAM-SHA-512"  # PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
    username: str = ""
    password: str = field(default="", repr=False)
    cafile: Path | None = None  # trusted besides the system's CAs, when the file exists

    def options(self) -> dict[str, Any]:
        """The aiokafka keyword arguments: the same for the producer, the consumers and the admin."""
        if self.protocol not in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"):
            raise KafkaBusError(f"unknown Kafka security protocol {self.protocol!r}")
        out: dict[str, Any] = {"security_protocol": self.protocol}
        if self.protocol.startswith("SASL_"):
            if not self.username:
                raise KafkaBusError(f"Kafka {self.protocol} needs a username (CELLCELLY_KAFKA_USERNAME)")
            # aiokafka takes the SCRAM login in the sasl_plain_* arguments too
            out.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.username,
                sasl_plain_password=self.password,
            )
        if self.protocol in ("SSL", "SASL_SSL"):
            context = ssl.create_default_context()
            if self.cafile is not None and self.cafile.is_file():
                context.load_verify_locations(cafile=str(self.cafile))
            out["ssl_context"] = context
        return out


class KafkaBus:
    """`EventBus` on a Kafka cluster. `bootstrap` is "host:port[,host:port...]"."""

    def __init__(
        self,
        bootstrap: str,
        *,
        client_id: str = "cellcelly",
        partitions: int = DEFAULT_PARTITIONS,
        replication_factor: int = 1,
        publish_timeout: float = 30.0,
        producer_options: dict[str, Any] | None = None,
        consumer_options: dict[str, Any] | None = None,
        security: KafkaSecurity | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.connection_options = (security or KafkaSecurity()).options()  # a bad setting fails here
        self.client_id = client_id
        self.partitions = partitions
        self.replication_factor = replication_factor
        self.publish_timeout = publish_timeout
        self._producer_options = dict(producer_options or {})
        self._consumer_options = dict(consumer_options or {})
        self._producer: AIOKafkaProducer | None = None
        self._producer_lock = asyncio.Lock()
        # each send's acknowledgement not yet awaited by a flush, and the producer it went to
        self._unflushed: dict[asyncio.Future[Any], AIOKafkaProducer] = {}
        self._known_topics: set[str] = set()
        self._topics_lock = asyncio.Lock()
        self._consumers: set[_Reader] = set()
        self._closed = False

    # -- topics ------------------------------------------------------------------------------

    async def ensure_topics(self, topics: Iterable[str]) -> None:
        """Create the topics not yet seen by this bus; tolerates topics that already exist."""
        wanted = sorted(set(topics) - self._known_topics)
        if not wanted:
            return
        async with self._topics_lock:
            wanted = sorted(set(wanted) - self._known_topics)
            if not wanted:
                return
            admin = AIOKafkaAdminClient(
                bootstrap_servers=self.bootstrap,
                client_id=f"{self.client_id}-admin",
                request_timeout_ms=int(self.publish_timeout * 1000),
                **self.connection_options,
            )
            try:
                await asyncio.wait_for(admin.start(), self.publish_timeout)
                response = await asyncio.wait_for(
                    admin.create_topics(
                        [NewTopic(t, self.partitions, self.replication_factor) for t in wanted]
                    ),
                    self.publish_timeout,
                )
            except (KafkaError, OSError, TimeoutError) as exc:
                raise KafkaBusError(f"cannot create topics {wanted} on {self.bootstrap}: {exc!r}") from exc
            finally:
                await admin.close()
            for entry in response.topic_errors:
                topic, code = entry[0], entry[1]
                if code not in (0, TOPIC_ALREADY_EXISTS):
                    raise KafkaBusError(f"cannot create topic {topic}: {for_code(code).__name__}")
            self._known_topics.update(wanted)
            log.debug("topics ready: %s", wanted)

    # -- publishing --------------------------------------------------------------------------

    async def _started_producer(self) -> AIOKafkaProducer:
        if self._closed:
            raise KafkaBusError("bus is closed")
        if self._producer is not None:
            return self._producer
        async with self._producer_lock:
            if self._producer is None:
                options: dict[str, Any] = {
                    "enable_idempotence": True,
                    "acks": "all",
                    "linger_ms": 2,
                    "request_timeout_ms": int(self.publish_timeout * 1000),
                    **self.connection_options,
                }
                options.update(self._producer_options)
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.bootstrap, client_id=self.client_id, **options
                )
                try:
                    await asyncio.wait_for(producer.start(), self.publish_timeout)
                except BaseException as exc:
                    await producer.stop()
                    if isinstance(exc, KafkaError | OSError | TimeoutError):
                        raise KafkaBusError(f"cannot connect to Kafka at {self.bootstrap}: {exc!r}") from exc
                    raise
                self._producer = producer
            return self._producer

    async def publish(self, batch: Sequence[Outgoing]) -> None:
        """Send the batch and wait for every acknowledgement (acks=all): durable on return.

        Raises `KafkaBusError` when the broker does not acknowledge within `publish_timeout`
        seconds; then any part of the batch may or may not have been written (publish again: the
        consumers are idempotent on the event id).
        """
        await self.send(batch)
        await self.flush()

    async def send(self, batch: Sequence[Outgoing]) -> None:
        """Hand the batch to the producer: its acknowledgements are awaited by the next `flush`, so
        the relay's sends every few ms do not each wait for the brokers."""
        if not batch:
            return
        await self.ensure_topics({item.topic for item in batch})
        producer = await self._started_producer()
        sent: list[asyncio.Future[Any]] = []
        try:
            # send() only appends to the producer's batches (it blocks on metadata or a full
            # buffer, at most request_timeout_ms)
            for item in batch:
                sent.append(await producer.send(item.topic, value=item.value, key=item.key.encode()))
        except (KafkaError, OSError, TimeoutError) as exc:
            error = KafkaBusError(f"publish of {len(batch)} record(s) to {self.bootstrap} failed: {exc!r}")
            await self._discard_producer(producer, error)
            _consume(sent)
            raise error from exc
        except asyncio.CancelledError:
            await self._discard_producer(producer, KafkaBusError("publish cancelled"))
            _consume(sent)
            raise
        self._unflushed.update((future, producer) for future in sent)

    async def flush(self) -> None:
        """Wait for the acknowledgement of everything sent so far, at most `publish_timeout` seconds
        (asyncio.wait: a timeout unwinds none of aiokafka's coroutines). A send not acknowledged
        fails this flush and every other one waiting for it; its producer is dropped."""
        waiting = dict(self._unflushed)
        if not waiting:
            return
        try:
            done, pending = await asyncio.wait(waiting, timeout=self.publish_timeout)
            if pending:
                raise TimeoutError(
                    f"{len(pending)} not acknowledged within {self.publish_timeout:g} s (is the broker up?)"
                )
            for future in done:
                future.result()
        except (KafkaError, OSError, TimeoutError) as exc:
            error = KafkaBusError(f"publish of {len(waiting)} record(s) to {self.bootstrap} failed: {exc!r}")
            await self._drop_producer_of(waiting, error)
            raise error from exc
        except asyncio.CancelledError:
            await self._drop_producer_of(waiting, KafkaBusError("publish cancelled"))
            raise
        finally:
            for future in waiting:
                self._unflushed.pop(future, None)

    async def _drop_producer_of(
        self, waiting: dict[asyncio.Future[Any], AIOKafkaProducer], error: KafkaBusError
    ) -> None:
        """After a failed flush: drop the producer its sends went to (unless another failure did)."""
        if self._producer is not None and self._producer in waiting.values():
            await self._discard_producer(self._producer, error)
        _consume(list(waiting))

    async def _discard_producer(self, producer: AIOKafkaProducer, error: KafkaBusError) -> None:
        """Drop a producer whose records are in doubt: it would retry them forever against a dead
        broker (and `stop()` would wait for them). The next publish starts a fresh producer (a new
        producer id, so no sequence numbers in doubt either)."""
        if self._producer is producer:
            self._producer = None
        # aiokafka has no public "abort pending sends", and an idempotent producer never expires
        # a batch: stop its sender task first (in-flight requests finish their attempt and put
        # their batches back), then fail every batch, so stop() has nothing left to flush.
        try:
            await asyncio.wait_for(producer._sender.close(), 10)  # noqa: SLF001
        except Exception:  # noqa: BLE001 - best effort; stop() below still closes the connections
            log.warning("kafka producer sender of %s did not stop cleanly", self.bootstrap, exc_info=True)
        accumulator = producer._message_accumulator  # noqa: SLF001
        queued = [b for batches in accumulator._batches.values() for b in batches]  # noqa: SLF001
        accumulator._batches.clear()  # noqa: SLF001
        # batches sent before and put back carry a done-callback that removes them from this set
        accumulator._pending_batches.update(queued)  # noqa: SLF001
        for doomed in [*queued, *accumulator._pending_batches]:  # noqa: SLF001
            doomed.failure(error)
            for future in (doomed.future, doomed._drain_waiter):  # noqa: SLF001
                if future.done() and not future.cancelled():
                    future.exception()  # retrieved: no "never retrieved" noise
        try:
            await asyncio.wait_for(producer.stop(), 10)
        except TimeoutError:
            log.warning("kafka producer of %s did not stop within 10 s", self.bootstrap)

    # -- consuming ---------------------------------------------------------------------------

    def consumer(self, group: str, topics: Sequence[str]) -> KafkaConsumer:
        if self._closed:
            raise KafkaBusError("bus is closed")
        consumer = KafkaConsumer(self, group, list(topics), self._consumer_options)
        self._consumers.add(consumer)
        return consumer

    def tail(self, topics: Sequence[str]) -> KafkaTail:
        if self._closed:
            raise KafkaBusError("bus is closed")
        tail = KafkaTail(self, list(topics), self._consumer_options)
        self._consumers.add(tail)
        return tail

    def _forget(self, consumer: _Reader) -> None:
        self._consumers.discard(consumer)

    async def close(self) -> None:
        self._closed = True
        for consumer in list(self._consumers):
            await consumer.close()
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()


class _Reader:
    """What a group member and a tail share: the aiokafka consumer, opened on first use (once, under
    a lock), and closing."""

    what = "reader"
    subscribes = True  # a group member subscribes to the topics; a tail assigns partitions itself

    def __init__(self, bus: KafkaBus, topics: list[str], options: dict[str, Any]) -> None:
        self._bus = bus
        self.topics = topics
        self._options = options
        self._consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    def _client_options(self) -> dict[str, Any]:
        """How this kind of reader differs: its group, where it starts, its client id."""
        raise NotImplementedError

    async def _ready(self, consumer: AIOKafkaConsumer) -> None:
        """Run once the consumer has started (a tail assigns its partitions here)."""

    async def _started(self) -> AIOKafkaConsumer:
        if self._closed:
            raise KafkaBusError(f"{self.what} is closed")
        if self._consumer is not None:
            return self._consumer
        async with self._lock:
            if self._consumer is None:
                await self._bus.ensure_topics(self.topics)
                options: dict[str, Any] = {
                    "enable_auto_commit": False,
                    "request_timeout_ms": int(self._bus.publish_timeout * 1000),
                    **self._bus.connection_options,
                    **self._client_options(),
                }
                options.update(self._options)
                topics = self.topics if self.subscribes else ()
                consumer = AIOKafkaConsumer(*topics, bootstrap_servers=self._bus.bootstrap, **options)
                try:
                    await asyncio.wait_for(consumer.start(), self._bus.publish_timeout)
                    await self._ready(consumer)
                except BaseException as exc:
                    await consumer.stop()
                    if isinstance(exc, KafkaError | OSError | TimeoutError):
                        raise KafkaBusError(
                            f"{self.what} cannot connect to {self._bus.bootstrap}: {exc!r}"
                        ) from exc
                    raise
                self._consumer = consumer
            return self._consumer

    async def _partitions(self, consumer: AIOKafkaConsumer) -> set[TopicPartition]:
        """Every partition of the topics (asking the brokers when the metadata does not know one)."""
        found: set[TopicPartition] = set()
        for topic in self.topics:
            ids = consumer.partitions_for_topic(topic)
            if not ids:
                await consumer._client.force_metadata_update()  # noqa: SLF001 - metadata not yet known
                ids = consumer.partitions_for_topic(topic) or set()
            found.update(TopicPartition(topic, p) for p in ids)
        return found

    def assignment(self) -> set[tuple[str, int]]:
        """(topic, partition) pairs read now (empty before the first use)."""
        if self._consumer is None:
            return set()
        return {(tp.topic, tp.partition) for tp in self._consumer.assignment()}

    async def close(self) -> None:
        self._closed = True
        self._bus._forget(self)
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()


class KafkaConsumer(_Reader):
    """`EventConsumer`: one member of a consumer group; started (joins the group) on first use."""

    def __init__(self, bus: KafkaBus, group: str, topics: list[str], options: dict[str, Any]) -> None:
        super().__init__(bus, topics, options)
        self.group = group
        self.what = f"consumer {group}"

    def _client_options(self) -> dict[str, Any]:
        return {
            "group_id": self.group,
            "auto_offset_reset": "earliest",
            "client_id": f"{self._bus.client_id}-{self.group}",
        }

    async def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[Record]:
        consumer = await self._started()
        return _records(await consumer.getmany(timeout_ms=int(timeout * 1000), max_records=max_records))

    async def commit(self, records: Sequence[Record]) -> None:
        if not records:
            return
        highest: dict[TopicPartition, int] = {}
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            if record.offset >= highest.get(tp, -1):
                highest[tp] = record.offset
        consumer = await self._started()
        try:
            await consumer.commit({tp: OffsetAndMetadata(offset + 1, "") for tp, offset in highest.items()})
        except KafkaError as exc:
            raise KafkaBusError(f"commit of group {self.group} failed: {exc!r}") from exc

    async def rewind(self) -> None:
        consumer = await self._started()
        for tp in consumer.assignment():
            # aiokafka's seek_to_committed leaves a partition without a commit where it is
            committed = await consumer.committed(tp)
            if committed is None or committed < 0:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, committed)

    async def lag(self) -> int:
        """End offsets minus the group's committed offsets, over every partition of the topics
        (not only this member's): what the whole group still has to do. A partition without a
        commit counts from its beginning (auto_offset_reset=earliest)."""
        consumer = await self._started()
        partitions = sorted(await self._partitions(consumer))
        if not partitions:
            return 0
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.beginning_offsets(partitions)
        total = 0
        for tp in partitions:
            committed = await consumer.committed(tp)
            done = committed if committed is not None else starts.get(tp, 0)
            total += max(0, ends.get(tp, 0) - done)
        return total


class KafkaTail(_Reader):
    """`EventTail`: every partition of the topics from their end when `start` ran (the first poll
    when nobody called it), with no group and no commits."""

    what = "tail"
    subscribes = False

    def __init__(
        self, bus: KafkaBus, topics: list[str], options: dict[str, Any], *, partition_check: float = 10.0
    ) -> None:
        super().__init__(bus, topics, options)
        self.partition_check = partition_check
        self._checked = 0.0

    async def start(self) -> None:
        """Take the current end of every partition as where this tail begins."""
        await self._started()

    def _client_options(self) -> dict[str, Any]:
        return {"group_id": None, "auto_offset_reset": "latest", "client_id": f"{self._bus.client_id}-tail"}

    async def _ready(self, consumer: AIOKafkaConsumer) -> None:
        partitions = await self._partitions(consumer)
        consumer.assign(list(partitions))
        if partitions:
            # explicit offsets, not seek_to_end(): where the tail begins is fixed when start()
            # returns, not whenever the lookup happens to finish
            ends = await consumer.end_offsets(list(partitions))
            for tp in partitions:
                consumer.seek(tp, ends[tp])
        self._checked = time.monotonic()

    async def _follow_new_partitions(self, consumer: AIOKafkaConsumer) -> None:
        """Assign partitions added since the last look, from their beginning; keep the others where
        they are (assign() replaces the whole assignment and forgets positions)."""
        self._checked = time.monotonic()
        await consumer._client.force_metadata_update()  # noqa: SLF001 - the cached map is minutes old
        now = await self._partitions(consumer)
        held = consumer.assignment()
        added = now - held
        if not added:
            return
        positions = {tp: await consumer.position(tp) for tp in held}
        consumer.assign(list(now))
        for tp, offset in positions.items():
            consumer.seek(tp, offset)
        await consumer.seek_to_beginning(*added)
        log.info("tail follows new partitions", extra={"partitions": sorted(str(tp) for tp in added)})

    async def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[Record]:
        consumer = await self._started()
        if not consumer.assignment() or time.monotonic() - self._checked >= self.partition_check:
            await self._follow_new_partitions(consumer)
            if not consumer.assignment():  # the topics' metadata is not out yet: nothing to read
                await asyncio.sleep(timeout)
                return []
        try:
            batches = await consumer.getmany(timeout_ms=int(timeout * 1000), max_records=max_records)
        except KafkaError as exc:
            raise KafkaBusError(f"tail of {self.topics} failed: {exc!r}") from exc
        return _records(batches)
