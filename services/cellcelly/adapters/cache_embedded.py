"""The embedded lookup cache: an in-process dict in front of a loader, with time limits.

Found subscribers are kept for `ttl` seconds, unknown MSISDNs for `negative_ttl` (short, so a
subscriber who has just signed up is found soon even if nobody invalidated the entry).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from cellcelly.ports.cache import SubscriberInfo


class EmbeddedCache:
    def __init__(
        self,
        loader: Callable[[str], SubscriberInfo | None],
        *,
        ttl: float = 300.0,
        negative_ttl: float = 5.0,
        max_entries: int = 1_000_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._loader = loader
        self._ttl, self._negative_ttl = ttl, negative_ttl
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, SubscriberInfo | None]] = OrderedDict()
        self.hits = self.misses = 0

    def get(self, msisdn: str) -> SubscriberInfo | None:
        now = self._clock()
        entry = self._entries.get(msisdn)
        if entry is not None and entry[0] > now:
            self.hits += 1
            return entry[1]
        self.misses += 1
        info = self._loader(msisdn)
        self._entries[msisdn] = (now + (self._ttl if info is not None else self._negative_ttl), info)
        self._entries.move_to_end(msisdn)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return info

    def invalidate(self, msisdn: str) -> None:
        self._entries.pop(msisdn, None)
