"""`runtime.CpuShare`: a background process's CPU spread thin (the balance checkpointer's)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cellcelly.runtime import CpuShare


class FakeCpu:
    """CPU seconds advanced by the test; sleeps recorded, not slept (sleeping uses no CPU)."""

    def __init__(self) -> None:
        self.used = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.used

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


def test_after_a_step_of_cpu_it_sleeps_for_the_rest_of_the_share() -> None:
    cpu = FakeCpu()
    pace = CpuShare(0.25, step=0.01, clock=cpu.clock, sleep=cpu.sleep)
    cpu.used += 0.004
    pace()
    assert cpu.sleeps == []  # under a step: on it goes
    cpu.used += 0.008
    pace()
    assert cpu.sleeps == [pytest.approx(0.036)]  # 12 ms of CPU, then 36: a quarter of a core
    cpu.used += 0.002
    pace()
    assert len(cpu.sleeps) == 1  # the step counts again from the sleep


def test_a_whole_core_never_sleeps() -> None:
    cpu = FakeCpu()
    pace = CpuShare(1.0, clock=cpu.clock, sleep=cpu.sleep)
    for _ in range(100):
        cpu.used += 0.05
        pace()
    assert cpu.sleeps == [] and pace.slept == 0


@pytest.mark.parametrize("share", [0.0, -0.5, 1.5])
def test_a_share_is_of_one_core_and_more_than_none(share: float) -> None:
    with pytest.raises(ValueError, match="CPU share"):
        CpuShare(share)


@given(
    share=st.floats(0.05, 0.95),
    work=st.lists(st.floats(0.0, 0.05), min_size=1, max_size=200),
)
def test_over_any_work_its_cpu_is_at_most_its_share_of_the_time(share: float, work: list[float]) -> None:
    """Whatever the work between two calls, the CPU before the last sleep is at most `share` of
    the time spent (CPU and sleeps), and at most a step of CPU goes unpaced."""
    cpu = FakeCpu()
    pace = CpuShare(share, step=0.01, clock=cpu.clock, sleep=cpu.sleep)
    paced_until = 0.0
    for seconds in work:
        cpu.used += seconds
        before = len(cpu.sleeps)
        pace()
        if len(cpu.sleeps) > before:
            paced_until = cpu.used
    assert sum(cpu.sleeps) == pytest.approx(pace.slept)
    if paced_until:
        assert paced_until / (paced_until + pace.slept) <= share + 1e-9
    assert cpu.used - paced_until < 0.01
