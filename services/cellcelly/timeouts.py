"""Requests' deadlines, kept by one timer for all of them.

Every CCR waits with a deadline twice: in the gateway's OCS client and in the traffic generator
(`PeerConnection.request`). `asyncio.wait_for` wrapped each awaited future in a second one; a timer
a request (`loop.call_later` and its `cancel`) still cost ~2 µs on uvloop. Here a request costs an
append to a queue, and one timer every `granularity` seconds fails what is overdue: a deadline is
kept to within that, plenty for timeouts of seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

GRANULARITY = 0.05  # seconds a deadline may be overshot


class Deadlines:
    """Futures failed with TimeoutError once their time is up, unless done before.

    One queue per timeout: each is in deadline order as requests come, so the overdue ones are
    always at its front. A future done in time stays queued until the check reaches it, and the
    timer stops when nothing is queued. Belongs to one event loop (its owner's).
    """

    def __init__(self, granularity: float = GRANULARITY) -> None:
        self.granularity = granularity
        self._queues: dict[float, deque[tuple[float, asyncio.Future[Any], str]]] = {}
        self._timer: asyncio.TimerHandle | None = None

    def add(self, fut: asyncio.Future[Any], timeout: float, what: str = "no answer in time") -> None:
        queue = self._queues.get(timeout)
        if queue is None:
            queue = self._queues[timeout] = deque()
        queue.append((time.monotonic() + timeout, fut, what))
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.granularity, self._check)

    def _check(self) -> None:
        now = time.monotonic()
        queued = False
        for queue in self._queues.values():
            while queue and (queue[0][1].done() or queue[0][0] <= now):
                _, fut, what = queue.popleft()
                if not fut.done():
                    fut.set_exception(TimeoutError(what))
            queued = queued or bool(queue)
        self._timer = asyncio.get_running_loop().call_later(self.granularity, self._check) if queued else None

    def close(self) -> None:
        """Stop the timer; what is queued is left to its owner (a closed connection fails it)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._queues.clear()
