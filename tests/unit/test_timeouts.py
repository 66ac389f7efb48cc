"""`Deadlines`: one timer fails every overdue request with TimeoutError, and only those."""

from __future__ import annotations

import asyncio
import time

import pytest

from cellcelly.timeouts import Deadlines

pytestmark = [pytest.mark.unit, pytest.mark.timeout(10)]


async def test_an_unanswered_request_fails_after_its_timeout_and_an_answered_one_does_not() -> None:
    deadlines = Deadlines(granularity=0.01)
    loop = asyncio.get_running_loop()
    late, answered, longer = loop.create_future(), loop.create_future(), loop.create_future()
    started = time.monotonic()
    deadlines.add(late, 0.1, "no answer from the OCS in time")
    deadlines.add(answered, 0.1)
    deadlines.add(longer, 0.3)
    answered.set_result("CCA")
    with pytest.raises(TimeoutError, match="no answer from the OCS in time"):
        await late
    took = time.monotonic() - started
    assert 0.1 <= took < 0.1 + 0.1  # within its granularity (and a loaded machine's slack)
    assert answered.result() == "CCA"
    assert not longer.done()  # its own, later deadline
    with pytest.raises(TimeoutError, match="no answer in time"):
        await longer
    assert time.monotonic() - started >= 0.3


async def test_the_timer_runs_only_while_something_is_queued() -> None:
    deadlines = Deadlines(granularity=0.01)
    fut = asyncio.get_running_loop().create_future()
    deadlines.add(fut, 5.0)
    assert deadlines._timer is not None
    fut.set_result(None)
    await asyncio.sleep(0.05)  # the check finds it done and nothing else queued
    assert deadlines._timer is None
    deadlines.add(asyncio.get_running_loop().create_future(), 5.0)
    assert deadlines._timer is not None
    deadlines.close()
    assert deadlines._timer is None


async def test_a_stuck_request_holds_back_no_deadline_of_another_timeout() -> None:
    """Queues are per timeout: a 5 s request in front does not delay a 0.05 s one's failure."""
    deadlines = Deadlines(granularity=0.01)
    loop = asyncio.get_running_loop()
    slow, quick = loop.create_future(), loop.create_future()
    deadlines.add(slow, 5.0)
    deadlines.add(quick, 0.05)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(quick, 1.0)
    assert not slow.done()
    deadlines.close()
