"""A usage event as the embedded store's journal writes it (`codec.usage_to_list`) reads back the
same event: every field, at every value the record holds, through orjson as the journal does."""

from __future__ import annotations

from dataclasses import fields

import orjson
from hypothesis import given
from hypothesis import strategies as st

from cellcelly.codec import event_to_dict, usage_from_list, usage_to_list
from cellcelly.domain.charging import UsageEvent
from cellcelly.domain.limits import MAX_UNITS
from cellcelly.domain.units import Service

BIGINT = st.integers(-(2**63), 2**63 - 1)
texts = st.text(max_size=40)

usage_events = st.builds(
    UsageEvent,
    event_id=texts,
    msisdn=texts,
    session_id=texts,
    request_number=st.integers(0, 2**32 - 1),
    rating_group=st.integers(0, 2**32 - 1),
    service=st.sampled_from(Service),
    rule_id=texts,
    units=st.integers(0, MAX_UNITS),
    bucket_units=st.integers(0, MAX_UNITS),
    wallet_units=st.integers(0, MAX_UNITS),
    uncharged_units=st.integers(0, MAX_UNITS),
    money=BIGINT,
    wallet_after=BIGINT,
    occurred_at=st.integers(0, 2**40),
    buckets=st.lists(st.tuples(texts, st.integers(0, MAX_UNITS)), max_size=4).map(tuple),
    revision=st.integers(0, 2**62),
    destination=texts,
    location=texts,
    catalogue_version=texts,
)


@given(usage_events)
def test_a_usage_event_reads_back_from_its_journal_list(event: UsageEvent) -> None:
    written = usage_to_list(event)
    assert len(written) == len(fields(UsageEvent))  # a field added to the event is written too
    back = usage_from_list(orjson.loads(orjson.dumps(written)))
    assert back == event
    assert event_to_dict(back) == event_to_dict(event)  # what the relay publishes is unchanged


def test_a_list_from_before_a_field_existed_reads_with_its_default() -> None:
    """Fields added at the end later: a record written without them reads them as their defaults."""
    event = UsageEvent("s#0#1", "5321234567", "s", 0, 1, Service.SMS, "sms-tr", 1, 1, 0, 0, 0, 100, 10)
    short = usage_to_list(event)[:15]
    assert usage_from_list(orjson.loads(orjson.dumps(short))) == event
