"""The loop every background worker runs (relay, SF, notifier): one step at a time until told
to stop, backing off exponentially while steps fail, and never sleeping past a stop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def wait_or_stop(stop: asyncio.Event, seconds: float) -> None:
    """Sleep `seconds`, or less if `stop` is set meanwhile."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass


async def run_until_stopped(
    step: Callable[[], Awaitable[float]],
    stop: asyncio.Event,
    *,
    name: str,
    backoff: tuple[float, float],
    on_failure: Callable[[], None] | None = None,
) -> None:
    """Run `step` until `stop` is set. A step returns how long to idle before the next (0: at once);
    a step that raises is retried after `backoff[0]` seconds, doubling up to `backoff[1]`."""
    delay = backoff[0]
    failing = False
    while not stop.is_set():
        try:
            idle = await step()
        except Exception as exc:  # noqa: BLE001 - a back end is down: wait and retry, nothing is lost
            if on_failure is not None:
                on_failure()
            # the traceback once a streak: a back end away for minutes would fill the log with copies
            log.warning(
                f"{name}: step failed, retrying",
                extra={"in": delay, "error": repr(exc)},
                exc_info=not failing,
            )
            failing = True
            await wait_or_stop(stop, delay)
            delay = min(delay * 2, backoff[1])
            continue
        if failing:
            log.info(f"{name}: steps work again")
        failing = False
        delay = backoff[0]
        if idle > 0:
            await wait_or_stop(stop, idle)
