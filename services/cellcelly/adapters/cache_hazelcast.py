"""The distributed lookup cache: a Hazelcast map in front of a loader, with a near cache on the client.

Every process that builds it (today the DGW alone: `ports/cache.py`) talks to the same Hazelcast
map, so what one loads the others
find, and `invalidate` on any of them reaches all: the entry is deleted on the member, which tells
every client's near cache (`invalidate_on_change`) to forget it. Repeated lookups of the same
MSISDN are answered from the near cache in this process, without a round trip to the member.

Values are small strings: JSON with the status for a subscriber, `UNKNOWN` for an MSISDN the loader
did not find. Found subscribers live `ttl` seconds on the member, unknown ones `negative_ttl`
(short, so a subscriber who has just signed up is found soon even if nobody invalidated the entry).
Expiry on the member invalidates the near caches too; on top of that a near-cache copy lives at
most `ttl`, and an unknown entry carries the time it was stored, so it is never served after
`negative_ttl` even where invalidations are late (members batch them, up to 10 s by default:
`scripts/hazelcast.sh` sets `hazelcast.map.invalidation.batch.enabled=false`).

On an event loop (`lookup_nowait`, `lookup`) a front comes first: a dict of what this process
read, as objects (a hit ~0.3 us against ~14 us through the near cache, where the client serialises
and hashes the key in Python). The member's invalidations do not reach it: a change made elsewhere
reaches it through `invalidate`, which the DGW's ledger follower calls for every account change
made by any process (`application/changes.py`), or when the entry's ttl (negative_ttl from when it
was stored) is over; `front=False` leaves only the near cache. Behind the front the client's
non-blocking map proxy is used: a near-cache hit is an already-done future read there and then, a
miss a future the client's reactor thread completes, handed to the loop with
`call_soon_threadsafe` (no thread per call); the loader is then awaited (`BalanceStore.get_async`),
and concurrent misses for one MSISDN load once. `get` is the blocking form for callers off any loop.

Needs the `hazelcast` extra (PyPI `hazelcast-python-client`; never the PyPI package `hazelcast`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import warnings
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

with warnings.catch_warnings():
    # hazelcast-python-client 5.x imports the stdlib asyncore (deprecated in 3.11, warns on import)
    warnings.filterwarnings("ignore", "The asyncore module is deprecated", DeprecationWarning)
    from hazelcast.client import HazelcastClient
    from hazelcast.config import InMemoryFormat
    from hazelcast.future import Future as HzFuture

from cellcelly.adapters.cache_loads import Loading, Loads, awaited
from cellcelly.ports.cache import SubscriberInfo

log = logging.getLogger(__name__)

UNKNOWN_PREFIX = "?"  # "?<epoch seconds when stored>": the loader found no such MSISDN


def encode(info: SubscriberInfo | None, now: float) -> str:
    if info is None:
        return f"{UNKNOWN_PREFIX}{now:.3f}"
    return json.dumps({"status": info.status}, ensure_ascii=False, separators=(",", ":"))


class _Stale(Exception):
    pass


def decode(msisdn: str, value: str, now: float, negative_ttl: float) -> SubscriberInfo | None:
    """The cached answer; raises _Stale for an expired unknown-entry or a value it cannot read."""
    if value.startswith(UNKNOWN_PREFIX):
        try:
            stored = float(value[len(UNKNOWN_PREFIX) :])
        except ValueError as exc:
            raise _Stale(value) from exc
        if now - stored >= negative_ttl:
            raise _Stale(value)
        return None
    try:
        fields = json.loads(value)
        return SubscriberInfo(msisdn=msisdn, status=str(fields["status"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise _Stale(value) from exc


def _on_loop(hz: HzFuture[Any], loop: asyncio.AbstractEventLoop) -> asyncio.Future[Any]:
    """The client's future as an asyncio future of `loop` (completed on the client's reactor
    thread, or at once when it is done already)."""
    out: asyncio.Future[Any] = loop.create_future()

    def copy(done: HzFuture[Any]) -> None:
        if out.done():
            return
        try:
            out.set_result(done.result())
        except Exception as exc:  # noqa: BLE001 - the client's error, for the awaiting caller
            out.set_exception(exc)

    def completed(done: HzFuture[Any]) -> None:
        try:
            loop.call_soon_threadsafe(copy, done)
        except RuntimeError:  # the loop is closed: nobody awaits it any more
            pass

    hz.add_done_callback(completed)
    return out


def _log_failure(what: str, msisdn: str) -> Callable[[HzFuture[Any]], None]:
    def check(done: HzFuture[Any]) -> None:
        if not done.is_success():
            log.warning("hazelcast %s failed", what, extra={"msisdn": msisdn, "error": str(done.exception())})

    return check


class HazelcastCache:
    """SubscriberCache on a Hazelcast map: `get` on the client's blocking map proxy, `lookup` and
    `lookup_nowait` on its non-blocking one."""

    def __init__(
        self,
        loader: Callable[[str], SubscriberInfo | None],
        *,
        aloader: Callable[[str], Awaitable[SubscriberInfo | None]] | None = None,
        members: Sequence[str] = ("127.0.0.1:5701",),
        cluster_name: str = "cellcelly",
        map_name: str = "cellcelly-subscribers",
        ttl: float = 300.0,
        negative_ttl: float = 5.0,
        near_cache: bool = True,
        near_cache_max_entries: int = 100_000,
        connect_timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
        username: str = "",
        password: str = "",
        smart_routing: bool = True,
        front: bool = True,
    ) -> None:
        if ttl <= 0 or negative_ttl <= 0:
            raise ValueError("ttl and negative_ttl must be positive")
        self._loader = loader
        self._aloader = aloader
        self._ttl, self._negative_ttl = float(ttl), float(negative_ttl)
        self._clock = clock
        options: dict[str, Any] = {
            "cluster_name": cluster_name,
            "cluster_members": list(members),
            # fail (HazelcastError) after connect_timeout instead of retrying forever when no member is up
            "cluster_connect_timeout": connect_timeout,
            # False: one connection, to the address given (members behind a proxy or load balancer)
            "smart_routing": smart_routing,
        }
        if username or password:
            # for members with security on (Enterprise); an open-source member refuses any client login
            options["creds_username"], options["creds_password"] = username, password
        if near_cache:
            options["near_caches"] = {
                map_name: {
                    "invalidate_on_change": True,
                    "time_to_live": self._ttl,  # never keep a copy longer than the member does
                    "eviction_max_size": near_cache_max_entries,
                    # values are immutable strings: a hit need not deserialize a copy
                    "in_memory_format": InMemoryFormat.OBJECT,
                }
            }
        self._client = HazelcastClient(**options)
        try:
            self._async_map: Any = self._client.get_map(map_name)
            self._map: Any = self._async_map.blocking()
        except BaseException:
            self._client.shutdown()
            raise
        self._loads = Loads()
        # what this process read, as objects: a near-cache hit costs ~14 us (the key serialised and
        # hashed in Python, the value decoded), a dict hit ~0.3 us (measured, docs/performance-log.md)
        self._front: OrderedDict[str, tuple[float, SubscriberInfo | None]] | None = (
            OrderedDict() if front else None
        )
        self._front_max = near_cache_max_entries
        self.hits = self.misses = 0

    @property
    def client(self) -> HazelcastClient:
        return self._client

    def get(self, msisdn: str) -> SubscriberInfo | None:
        value = self._map.get(msisdn)
        now = self._clock()
        if value is not None:
            try:
                info = decode(msisdn, value, now, self._negative_ttl)
            except _Stale:
                pass
            else:
                self.hits += 1
                return info
        self.misses += 1
        info = self._loader(msisdn)
        ttl = self._ttl if info is not None else self._negative_ttl
        # set = put without sending the old value back
        self._map.set(msisdn, encode(info, now), ttl)
        return info

    def lookup_nowait(self, msisdn: str) -> SubscriberInfo | None | asyncio.Future[SubscriberInfo | None]:
        front = self._front
        if front is not None:
            entry = front.get(msisdn)
            if entry is not None and entry[0] > self._clock():
                self.hits += 1
                return entry[1]
        loading = self._loads.pending(msisdn)
        if loading is not None:
            return loading
        asked = self._async_map.get(msisdn)  # done already when the near cache holds it
        if asked.done() and asked.is_success():
            value = asked.result()
            if value is not None:
                now = self._clock()
                try:
                    info = decode(msisdn, value, now, self._negative_ttl)
                except _Stale:
                    pass
                else:
                    self.hits += 1
                    self._keep(msisdn, value, now, info)
                    return info
            asked = None  # not on the member (or stale): load it
        loop = asyncio.get_running_loop()
        return self._loads.start(msisdn, lambda loading: self._load(msisdn, asked, loading, loop))

    async def lookup(self, msisdn: str) -> SubscriberInfo | None:
        return await awaited(self.lookup_nowait(msisdn))

    async def _load(
        self, msisdn: str, asked: HzFuture[Any] | None, loading: Loading, loop: asyncio.AbstractEventLoop
    ) -> None:
        if asked is not None:  # the member's answer
            value = await _on_loop(asked, loop)
            if value is not None:
                try:
                    info = decode(msisdn, value, self._clock(), self._negative_ttl)
                except _Stale:
                    pass
                else:
                    self.hits += 1
                    self._keep(msisdn, value, self._clock(), info)
                    self._loads.finish(msisdn, loading, info)
                    return
        self.misses += 1
        if self._aloader is not None:
            info = await self._aloader(msisdn)
        else:  # a blocking loader: off the loop
            info = await asyncio.to_thread(self._loader, msisdn)
        if not self._loads.current(msisdn, loading):  # invalidated meanwhile: do not store
            self._loads.finish(msisdn, loading, info)
            return
        ttl = self._ttl if info is not None else self._negative_ttl
        now = self._clock()
        value = encode(info, now)
        stored = self._async_map.set(msisdn, value, ttl)
        self._keep(msisdn, value, now, info)
        if not loading.done():
            loading.set_result(info)  # callers go on; later ones are answered by `loading`
        await _on_loop(stored, loop)  # until the member holds it, so the next miss finds it
        self._loads.finish(msisdn, loading, info)

    def _keep(self, msisdn: str, value: str, now: float, info: SubscriberInfo | None) -> None:
        """Into the front, for as long as the member keeps `value` (an unknown: from when it was stored)."""
        front = self._front
        if front is None:
            return
        expires = now + self._ttl
        if info is None:
            try:
                expires = float(value[len(UNKNOWN_PREFIX) :]) + self._negative_ttl
            except ValueError:
                return
        front[msisdn] = (expires, info)
        front.move_to_end(msisdn)
        while len(front) > self._front_max:
            front.popitem(last=False)

    def invalidate(self, msisdn: str) -> None:
        """Not waiting for the member (this is called on loops): this process's front and near cache
        forget at once, the member's delete follows on the same connection, before any later lookup."""
        self._loads.forget(msisdn)
        if self._front is not None:
            self._front.pop(msisdn, None)
        # delete = remove without sending the old value back; the member invalidates every near cache
        self._async_map.delete(msisdn).add_done_callback(_log_failure("delete", msisdn))

    def close(self) -> None:
        self._client.shutdown()

    def __enter__(self) -> HazelcastCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
