"""A back end away for minutes: the workers and the catalogue follower retry quietly, one traceback
a streak of failures, and say when it works again."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from cellcelly.application.worker import run_until_stopped
from cellcelly.catalogue_store import CatalogueFollower, CatalogueHolder
from cellcelly.settings import DEFAULT_CATALOGUE

pytestmark = pytest.mark.unit


def tracebacks(caplog: pytest.LogCaptureFixture, message: str) -> list[bool]:
    return [bool(r.exc_info) for r in caplog.records if r.getMessage().startswith(message)]


async def test_a_worker_logs_one_traceback_a_streak_of_failures(caplog: pytest.LogCaptureFixture) -> None:
    outcomes = iter([False, False, False, True, False, False, True])  # False: the back end is away
    stop = asyncio.Event()

    async def step() -> float:
        ok = next(outcomes, None)
        if ok is None:
            stop.set()
            return 0
        if not ok:
            raise ConnectionError("record away")
        return 0

    with caplog.at_level(logging.INFO, logger="cellcelly.application.worker"):
        await asyncio.wait_for(run_until_stopped(step, stop, name="relay", backoff=(0.001, 0.004)), 5)
    # two streaks (3 and 2 failures): a traceback at the start of each, one line for the others
    assert tracebacks(caplog, "relay: step failed") == [True, False, False, True, False]
    assert len(tracebacks(caplog, "relay: steps work again")) == 2


class FlakyRecord:
    """Only what the follower reads: the version in force, away while `away` is set."""

    def __init__(self) -> None:
        self.away = threading.Event()
        self.polls = 0

    def catalogue_in_force(self) -> None:
        self.polls += 1
        if self.away.is_set():
            raise ConnectionError("record away")


def test_the_catalogue_follower_logs_one_traceback_a_streak(caplog: pytest.LogCaptureFixture) -> None:
    record = FlakyRecord()
    holder = CatalogueHolder.from_file(DEFAULT_CATALOGUE)
    follower = CatalogueFollower(holder, record, interval=0.005)  # type: ignore[arg-type]

    def after(polls: int) -> None:
        target = record.polls + polls
        while record.polls < target:
            threading.Event().wait(0.005)

    with caplog.at_level(logging.INFO, logger="cellcelly.catalogue_store"):
        record.away.set()
        follower.start()
        after(4)
        record.away.clear()
        after(2)
        follower.stop()
    failed = tracebacks(caplog, "catalogue poll failed")
    assert len(failed) >= 3 and failed[0] and not any(failed[1:]), failed
    assert len(tracebacks(caplog, "catalogue poll works again")) == 1
