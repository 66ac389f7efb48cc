"""The checkpointer's pace: a share of a core over a task, by sleeping between its steps."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cellcelly.adapters.balance_checkpointer import MIN_SLEEP, Pace

pytestmark = pytest.mark.unit


class Clocks:
    def __init__(self) -> None:
        self.wall = 100.0
        self.cpu = 5.0
        self.slept: list[float] = []

    def work(self, seconds: float) -> None:
        self.wall += seconds
        self.cpu += seconds

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.wall += seconds


def pace_on(clocks: Clocks, share: float) -> Pace:
    return Pace(share, clock=lambda: clocks.wall, cpu=lambda: clocks.cpu, sleep=clocks.sleep)


def test_a_quarter_of_a_core_sleeps_three_times_what_it_worked() -> None:
    clocks = Clocks()
    pace = pace_on(clocks, 0.25)
    pace.start()
    clocks.work(1.0)
    pace()
    assert clocks.slept == [pytest.approx(3.0)]


def test_time_spent_waiting_counts_as_rest() -> None:
    clocks = Clocks()
    pace = pace_on(clocks, 0.5)
    pace.start()
    clocks.work(1.0)
    clocks.wall += 5.0  # off the CPU (preempted, reading the disk): already more than its rest
    pace()
    assert clocks.slept == []


def test_a_whole_core_never_sleeps() -> None:
    clocks = Clocks()
    pace = pace_on(clocks, 1.0)
    pace.start()
    for _ in range(10):
        clocks.work(0.3)
        pace()
    assert clocks.slept == []


@given(
    share=st.floats(0.05, 1.0),
    steps=st.lists(st.tuples(st.floats(0.0, 2.0), st.floats(0.0, 2.0)), min_size=1, max_size=30),
)
def test_after_every_step_the_task_has_used_at_most_its_share(
    share: float, steps: list[tuple[float, float]]
) -> None:
    clocks = Clocks()
    pace = pace_on(clocks, share)
    pace.start()
    began_wall, began_cpu = clocks.wall, clocks.cpu
    for work, waited in steps:
        clocks.work(work)
        clocks.wall += waited
        pace()
        used, elapsed = clocks.cpu - began_cpu, clocks.wall - began_wall
        assert used <= share * elapsed + MIN_SLEEP
