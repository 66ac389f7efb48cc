"""What both subscriber caches do on a miss, on an event loop: one load per MSISDN at a time.

Concurrent misses share the first one's future; `forget` (on invalidate) drops it, so a load that
started before a change finishes for its callers but does not put what it read in the cache.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from cellcelly.ports.cache import SubscriberInfo

log = logging.getLogger(__name__)

Loading = asyncio.Future[SubscriberInfo | None]


class Loads:
    def __init__(self) -> None:
        self._loading: dict[str, Loading] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def pending(self, msisdn: str) -> Loading | None:
        return self._loading.get(msisdn)

    def start(self, msisdn: str, load: Callable[[Loading], Awaitable[None]]) -> Loading:
        """Run `load(loading)` in a task; it ends with `finish` (a failure is set on the future)."""
        loading = self._loading[msisdn] = asyncio.get_running_loop().create_future()
        task = asyncio.ensure_future(self._run(msisdn, loading, load))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return loading

    def current(self, msisdn: str, loading: Loading) -> bool:
        """Not invalidated since it started: what it read may be cached."""
        return self._loading.get(msisdn) is loading

    def finish(self, msisdn: str, loading: Loading, info: SubscriberInfo | None) -> None:
        if self._loading.get(msisdn) is loading:
            del self._loading[msisdn]
        if not loading.done():
            loading.set_result(info)

    def forget(self, msisdn: str) -> None:
        self._loading.pop(msisdn, None)

    async def _run(self, msisdn: str, loading: Loading, load: Callable[[Loading], Awaitable[None]]) -> None:
        try:
            await load(loading)
        except BaseException as exc:
            if self._loading.get(msisdn) is loading:
                del self._loading[msisdn]
            if not loading.done():
                loading.set_exception(exc)
                loading.exception()  # retrieved: a caller may have stopped waiting
            if not isinstance(exc, Exception):
                raise
            log.warning("subscriber lookup failed", extra={"msisdn": msisdn, "error": str(exc)})


async def awaited(found: SubscriberInfo | None | Loading) -> SubscriberInfo | None:
    """`lookup` from `lookup_nowait`: a hit as it is, a load awaited (shielded: one caller giving
    up does not cancel it for the others)."""
    if isinstance(found, asyncio.Future):
        return await asyncio.shield(found)
    return found
