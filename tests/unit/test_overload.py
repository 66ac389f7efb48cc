"""The gateway's overload rule (`dgw/overload.py`): new sessions are refused only behind a standing
queue, the fastest answer of a window slower than the delay."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cellcelly.dgw.overload import MIN_ANSWERS, Overload

pytestmark = pytest.mark.unit

DELAY, WINDOW = 0.05, 0.2


def answers(rule: Overload, start: float, took: float, every: float, until: float) -> float:
    """Answers each `took` long, one every `every` seconds from `start` to `until`; the time after."""
    now = start
    while now < until:
        rule.answered(took, now)
        now += every
    return now


def test_fast_answers_admit_every_new_session() -> None:
    rule = Overload(DELAY, WINDOW)
    now = answers(rule, 0.0, 0.002, 0.001, 1.0)
    assert rule.admits(now) and not rule.overloaded


def test_a_standing_queue_refuses_new_sessions_until_it_is_gone(caplog: pytest.LogCaptureFixture) -> None:
    rule = Overload(DELAY, WINDOW)
    caplog.set_level(logging.INFO, "cellcelly.dgw.overload")
    now = answers(rule, 0.0, 0.002, 0.001, 0.5)
    assert rule.admits(now)
    now = answers(rule, now, 0.3, 0.001, now + 2 * WINDOW + 0.01)  # every answer 300 ms late
    assert rule.overloaded
    assert not rule.admits(now) and not rule.admits(now)
    now = answers(rule, now, 0.001, 0.001, now + 2 * WINDOW + 0.01)  # the queue drained
    assert rule.admits(now) and not rule.overloaded
    assert [r.getMessage() for r in caplog.records] == [
        "overloaded: new sessions refused with 3004 DIAMETER_TOO_BUSY",
        "overload over: new sessions admitted",
    ]
    assert caplog.records[1].refused == 2  # type: ignore[attr-defined]


def test_one_stuck_request_is_no_queue() -> None:
    """An OCS that hangs one request until its timeout while the others are answered at once."""
    rule = Overload(DELAY, WINDOW)
    now = 0.0
    while now < 2.0:
        rule.answered(0.001, now)
        if int(now * 1000) % 50 == 0:
            rule.answered(2.0, now)  # the stuck ones, as they time out
        now += 0.001
    assert rule.admits(now) and not rule.overloaded


def test_a_few_slow_answers_at_a_quiet_time_are_no_queue() -> None:
    """One request at a time, each 300 ms late (a stalled commit at night): no queue holds them,
    and new sessions are admitted."""
    rule = Overload(DELAY, WINDOW)
    now = answers(rule, 0.0, 0.3, WINDOW / (MIN_ANSWERS - 1) + 0.001, 3.0)
    assert rule.admits(now) and not rule.overloaded
    now = answers(rule, now, 0.3, WINDOW / (MIN_ANSWERS + 1), now + 3 * WINDOW)  # enough to be one
    assert rule.overloaded


def test_without_answers_the_verdict_lapses() -> None:
    """Overloaded, then nothing answered for a whole window (say every session ended): no measure
    is left, and new sessions are admitted again rather than refused for ever."""
    rule = Overload(DELAY, WINDOW)
    now = answers(rule, 0.0, 0.3, 0.001, 2 * WINDOW + 0.01)
    assert rule.overloaded and not rule.admits(now)
    assert rule.admits(now + 2 * WINDOW + 0.001)
    assert not rule.overloaded


def test_a_loop_late_every_tick_refuses_though_each_answer_is_quick() -> None:
    """A gateway short of CPU: requests wait unread in their sockets, which no answer's time shows,
    but the loop's timer does. Late by less than the delay (with quick answers), it admits."""
    rule = Overload(DELAY, WINDOW)
    now = 0.0
    for lag, expected in ((0.08, True), (0.03, False), (0.001, False)):
        until = now + 3 * WINDOW
        while now < until:
            rule.lagged(lag)
            rule.answered(0.01, now)
            now += 0.01
        assert rule.overloaded is expected, lag


def test_a_delay_of_zero_never_refuses() -> None:
    rule = Overload(0.0, WINDOW)
    now = answers(rule, 0.0, 5.0, 0.001, 1.0)
    assert rule.admits(now) and not rule.overloaded


@pytest.mark.parametrize(("delay", "window"), [(-0.001, WINDOW), (DELAY, 0.0)])
def test_nonsense_is_refused(delay: float, window: float) -> None:
    with pytest.raises(ValueError, match="overload"):
        Overload(delay, window)


gaps = st.floats(0.0, 0.1)  # between answers: less than a window


@given(st.lists(st.tuples(st.floats(0.0, DELAY), gaps), max_size=300))
def test_answers_within_the_delay_never_refuse(events: list[tuple[float, float]]) -> None:
    rule = Overload(DELAY, WINDOW)
    now = 0.0
    for took, gap in events:
        rule.answered(took, now)
        assert rule.admits(now)
        now += gap


@given(st.lists(st.tuples(st.floats(0.0, 1.0), gaps), max_size=300), st.floats(0.0, DELAY), gaps)
def test_after_any_history_fast_answers_admit_within_two_windows(
    events: list[tuple[float, float]], fast: float, gap: float
) -> None:
    """Whatever came before, two windows of answers within the delay end any refusal; and it
    turns to refusing only over a window (at least `WINDOW` long) whose answers were all slow."""
    rule = Overload(DELAY, WINDOW)
    now, last_fast = 0.0, -1.0  # when an answer within the delay last came
    for took, step in events:
        was = rule.overloaded
        rule.answered(took, now)
        if rule.overloaded and not was:
            assert last_fast <= now - WINDOW + 1e-9
        if took <= DELAY:
            last_fast = now
        now += step
    end = now + 2 * WINDOW + 0.1
    while now < end:
        rule.answered(fast, now)
        now += max(gap, 0.001)
    assert rule.admits(now) and not rule.overloaded
