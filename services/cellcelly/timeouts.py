"""A request's deadline as a timer on its own future.

`asyncio.wait_for` wraps the awaited future in a second one with callbacks of its own, a cost
that every CCR paid (in the gateway's OCS client and in the traffic generator); a timer that
fails the future itself gives the same TimeoutError for a few objects less.
"""

from __future__ import annotations

import asyncio
from typing import Any


def expire(fut: asyncio.Future[Any], what: str = "no answer in time") -> None:
    """The timer's callback (`loop.call_later(timeout, expire, fut)`): fail `fut` if still open."""
    if not fut.done():
        fut.set_exception(TimeoutError(what))
