"""The one balance summary every channel speaks from."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cellcelly.domain.account import Account, Bucket, Status
from cellcelly.domain.balance_summary import summarise
from cellcelly.domain.units import Service

pytestmark = pytest.mark.unit

NOW = 1_800_000_000


def test_sums_usable_buckets_after_reservations_and_names_the_soonest_end():
    acc = Account("5321234567", Status.ACTIVE, wallet=10_000, held_money=1_250)
    acc.buckets = {
        "a": Bucket("a", Service.VOICE, "ANKARA", 6000, 4000, NOW - 10, NOW + 100),
        "b": Bucket("b", Service.VOICE, "RIZE", 600, 600, NOW - 10, NOW + 50),
        "c": Bucket("c", Service.DATA, "ANKARA", 100, 100, NOW - 10, NOW - 1),  # ended
        "d": Bucket("d", Service.SMS, "RIZE", 10, 0, NOW - 10, NOW + 10),  # used up
    }
    acc.held_units = {"a": 1000}
    summary = summarise(acc, NOW)
    assert summary.wallet == 8_750
    voice = summary.allowance(Service.VOICE)
    assert (voice.remaining, voice.total, voice.used, voice.valid_until) == (3600, 6600, 3000, NOW + 50)
    sms = summary.allowance(Service.SMS)
    assert (sms.remaining, sms.total, sms.valid_until) == (0, 10, None)
    data = summary.allowance(Service.DATA)
    assert (data.remaining, data.total, data.valid_until) == (0, 0, None)
    assert summary.packages == ("RIZE", "ANKARA")
    assert [a.service for a in summary.allowances] == [Service.VOICE, Service.SMS, Service.DATA]


@given(
    st.lists(
        st.tuples(st.sampled_from(list(Service)), st.integers(0, 10**9), st.integers(0, 10**9)),
        max_size=8,
    )
)
def test_remaining_never_exceeds_total_nor_goes_negative(rows: list[tuple[Service, int, int]]):
    acc = Account("5321234567", Status.ACTIVE, wallet=0)
    for i, (service, total, held) in enumerate(rows):
        remaining = total // 2
        acc.buckets[str(i)] = Bucket(str(i), service, "P", total, remaining, NOW, NOW + 1)
        acc.held_units[str(i)] = held
    for allowance in summarise(acc, NOW).allowances:
        assert 0 <= allowance.remaining <= allowance.total
