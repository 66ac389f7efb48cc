"""The embedded lookup cache: an in-process dict in front of a loader, with time limits.

Found subscribers are kept for `ttl` seconds, unknown MSISDNs for `negative_ttl` (short, so a
subscriber who has just signed up is found soon even if nobody invalidated the entry).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from cellcelly.adapters.cache_loads import Loading, Loads, awaited
from cellcelly.ports.cache import SubscriberInfo

Loader = Callable[[str], SubscriberInfo | None]
AsyncLoader = Callable[[str], Awaitable[SubscriberInfo | None]]


class EmbeddedCache:
    def __init__(
        self,
        loader: Loader,
        *,
        aloader: AsyncLoader | None = None,
        ttl: float = 300.0,
        negative_ttl: float = 5.0,
        max_entries: int = 1_000_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._loader = loader
        self._aloader = aloader
        self._ttl, self._negative_ttl = ttl, negative_ttl
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, SubscriberInfo | None]] = OrderedDict()
        self._loads = Loads()
        self.hits = self.misses = 0

    def get(self, msisdn: str) -> SubscriberInfo | None:
        now = self._clock()
        entry = self._entries.get(msisdn)
        if entry is not None and entry[0] > now:
            self.hits += 1
            return entry[1]
        self.misses += 1
        info = self._loader(msisdn)
        self._store(msisdn, now, info)
        return info

    def lookup_nowait(self, msisdn: str) -> SubscriberInfo | None | asyncio.Future[SubscriberInfo | None]:
        entry = self._entries.get(msisdn)
        if entry is not None and entry[0] > self._clock():
            self.hits += 1
            return entry[1]
        loading = self._loads.pending(msisdn)
        if loading is not None:
            return loading
        self.misses += 1
        return self._loads.start(msisdn, lambda loading: self._load(msisdn, loading))

    async def lookup(self, msisdn: str) -> SubscriberInfo | None:
        return await awaited(self.lookup_nowait(msisdn))

    async def _load(self, msisdn: str, loading: Loading) -> None:
        now = self._clock()
        info = await self._aloader(msisdn) if self._aloader is not None else self._loader(msisdn)
        if self._loads.current(msisdn, loading):
            self._store(msisdn, now, info)
        self._loads.finish(msisdn, loading, info)

    def _store(self, msisdn: str, now: float, info: SubscriberInfo | None) -> None:
        self._entries[msisdn] = (now + (self._ttl if info is not None else self._negative_ttl), info)
        self._entries.move_to_end(msisdn)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def invalidate(self, msisdn: str) -> None:
        self._entries.pop(msisdn, None)
        self._loads.forget(msisdn)
