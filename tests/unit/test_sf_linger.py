"""How long the SF waits for more after a poll (`sf.sync.linger_for`)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cellcelly.sf.sync import linger_for

BATCH, LINGER = 50_000, 10.0

polls = st.integers(min_value=1, max_value=BATCH - 1)
gaps = st.floats(min_value=1e-3, max_value=3_600.0)


def test_busy_it_waits_the_whole_linger_but_not_past_a_full_batch() -> None:
    # 5,000 records/s: a whole linger fills a batch, and takes the whole linger to
    assert linger_for(25_000, 5.0, BATCH, LINGER) == pytest.approx(LINGER)
    # 8,000 records/s: a batch is full in 6.25 s
    assert linger_for(8_000, 1.0, BATCH, LINGER) == pytest.approx(6.25)


def test_quiet_it_hardly_waits() -> None:
    assert linger_for(10, 1.0, BATCH, LINGER) == pytest.approx(0.02)  # 10 records/s
    assert linger_for(2_500, 1.0, BATCH, LINGER) == pytest.approx(5.0)  # half the busy rate: half


def test_no_wait_after_a_full_poll_or_when_told_none() -> None:
    assert linger_for(BATCH, 1.0, BATCH, LINGER) == 0
    assert linger_for(5, 1.0, BATCH, 0.0) == 0


def test_the_first_poll_goes_by_its_own_size() -> None:
    assert linger_for(BATCH // 2, None, BATCH, LINGER) == pytest.approx(LINGER / 2)


@given(polls, gaps, polls, gaps)
def test_at_most_the_linger_and_more_for_a_faster_rate(n1: int, s1: float, n2: int, s2: float) -> None:
    first, second = linger_for(n1, s1, BATCH, LINGER), linger_for(n2, s2, BATCH, LINGER)
    assert 0 < first <= LINGER and 0 < second <= LINGER
    rate1, rate2 = n1 / s1, n2 / s2
    # waiting never grows a batch past full at the rate seen
    assert first * rate1 <= BATCH * (1 + 1e-9)
    if rate1 <= rate2 and rate2 <= BATCH / LINGER:  # below the busy rate: more records, longer
        assert first <= second * (1 + 1e-9)
