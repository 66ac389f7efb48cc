"""The charging engine keeps what the system of record can hold (`domain/limits.py`): whatever
path a request takes (Diameter, JSON, the OCS wire), a value past a limit is refused with 5012
and changes nothing, and every integer of a usage event fits a signed 64-bit column."""

from __future__ import annotations

from dataclasses import fields

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cellcelly.catalogue_store import parse_catalogue_text
from cellcelly.domain.account import DAY, Account, Bucket, Status
from cellcelly.domain.catalogue import Catalogue
from cellcelly.domain.charging import ChargeRequest, RequestType, ResultCode, ServiceUsage, UsageEvent, charge
from cellcelly.domain.limits import (
    INT64_MAX,
    MAX_REQUEST_NUMBER,
    MAX_SESSION_ID,
    MAX_SESSION_UNITS,
    MAX_UNITS,
    MAX_USAGE_EVENT_ID,
)
from cellcelly.domain.units import Service
from cellcelly.settings import DEFAULT_CATALOGUE

pytestmark = pytest.mark.unit

NOW = 1_800_000_000
MSISDN = "5321234567"
INITIAL, UPDATE = RequestType.INITIAL, RequestType.UPDATE
OK, REFUSED = ResultCode.SUCCESS, ResultCode.UNABLE_TO_COMPLY


@pytest.fixture(scope="module")
def cat() -> Catalogue:
    return parse_catalogue_text(DEFAULT_CATALOGUE.read_text(encoding="utf-8"))


def account(wallet: int = 10_000_00, data_b: int = 0) -> Account:
    acc = Account(MSISDN, Status.ACTIVE, wallet)
    if data_b:
        acc.buckets["pkg:data"] = Bucket(
            "pkg:data", Service.DATA, "PKG", data_b, data_b, NOW - DAY, NOW + DAY
        )
    return acc


def data(used: int = 0, requested: int | None = 0, rg: int = 1) -> ServiceUsage:
    return ServiceUsage(rg, Service.DATA, requested, used)


def started(cat: Catalogue, sid: str = "s") -> Account:
    out = charge(account(), cat, ChargeRequest(sid, INITIAL, 0, MSISDN, (data(requested=None),)), NOW)
    assert out.answer.result_code is OK and out.account is not None
    return out.account


def test_units_at_the_limit_are_charged_one_past_refused(cat: Catalogue) -> None:
    acc = started(cat)
    at = charge(acc, cat, ChargeRequest("s", UPDATE, 1, MSISDN, (data(MAX_UNITS),)), NOW)
    assert at.answer.result_code is OK and at.events[0].units == MAX_UNITS
    past = charge(acc, cat, ChargeRequest("s", UPDATE, 1, MSISDN, (data(MAX_UNITS + 1),)), NOW)
    assert past.answer.result_code is REFUSED and past.account is None and not past.events
    asked = charge(acc, cat, ChargeRequest("s", UPDATE, 1, MSISDN, (data(0, MAX_UNITS + 1),)), NOW)
    assert asked.answer.result_code is REFUSED and asked.account is None


def test_the_exact_report_of_the_issue_is_refused(cat: Catalogue) -> None:
    """CC-Total-Octets = 2^63 in a CCR-U was answered 2001 and stalled the SF."""
    out = charge(started(cat), cat, ChargeRequest("s", UPDATE, 1, MSISDN, (data(2**63),)), NOW)
    assert out.answer.result_code is REFUSED and out.account is None and not out.events


@pytest.mark.parametrize(
    ("sid", "number", "rg", "code"),
    [
        ("s" * MAX_SESSION_ID, MAX_REQUEST_NUMBER, 2**32 - 1, OK),
        ("s" * (MAX_SESSION_ID + 1), 0, 1, REFUSED),
        ("", 0, 1, REFUSED),
        ("s", MAX_REQUEST_NUMBER + 1, 1, REFUSED),
        ("s", -1, 1, REFUSED),
        ("s", 0, 2**32, REFUSED),
    ],
)
def test_session_ids_request_numbers_and_rating_groups(
    cat: Catalogue, sid: str, number: int, rg: int, code: ResultCode
) -> None:
    out = charge(account(), cat, ChargeRequest(sid, INITIAL, number, MSISDN, (data(rg=rg),)), NOW)
    assert out.answer.result_code is code
    assert (out.account is None) == (code is REFUSED)


def test_the_event_id_of_the_longest_request_fits_its_column(cat: Catalogue) -> None:
    acc = started(cat, "s" * MAX_SESSION_ID)
    req = ChargeRequest("s" * MAX_SESSION_ID, UPDATE, MAX_REQUEST_NUMBER, MSISDN, (data(5, rg=1),))
    out = charge(acc, cat, req, NOW)
    assert out.answer.result_code is OK
    assert len(out.events[0].event_id) <= MAX_USAGE_EVENT_ID


def test_a_sessions_total_stops_at_its_limit_and_a_retransmission_still_gets_its_answer(
    cat: Catalogue,
) -> None:
    acc = started(cat)
    reports = MAX_SESSION_UNITS // MAX_UNITS  # 512 reports at the limit reach the total exactly
    answers = {}
    for n in range(1, reports + 1):
        out = charge(acc, cat, ChargeRequest("s", UPDATE, n, MSISDN, (data(MAX_UNITS),)), NOW)
        assert out.answer.result_code is OK and out.account is not None
        acc, answers[n] = out.account, out.answer
    assert acc.sessions["s"].services[1].used == MAX_SESSION_UNITS
    one_more = charge(acc, cat, ChargeRequest("s", UPDATE, reports + 1, MSISDN, (data(1),)), NOW)
    assert one_more.answer.result_code is REFUSED and one_more.account is None
    again = charge(acc, cat, ChargeRequest("s", UPDATE, reports, MSISDN, (data(MAX_UNITS),)), NOW)
    assert again.answer == answers[reports] and again.account is None
    nothing = charge(acc, cat, ChargeRequest("s", UPDATE, reports + 1, MSISDN, (data(0),)), NOW)
    assert nothing.answer.result_code is OK  # a report of nothing still goes through


def _ints(event: UsageEvent) -> list[int]:
    values = [getattr(event, f.name) for f in fields(event)]
    return [v for v in values if isinstance(v, int)] + [u for _, u in event.buckets]


@settings(max_examples=200, deadline=None)
@given(
    wallet=st.integers(0, 10**11),
    bucket=st.integers(0, MAX_UNITS),
    reports=st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=6),
)
def test_every_integer_the_record_receives_fits_a_signed_64_bit_column(
    cat: Catalogue, wallet: int, bucket: int, reports: list[int]
) -> None:
    """Any reports at all: those within the limits are charged and their events fit; the others
    are refused and change nothing; the wallet never goes below zero."""
    first = charge(
        account(wallet, bucket), cat, ChargeRequest("s", INITIAL, 0, MSISDN, (data(requested=None),)), NOW
    )
    assume(first.answer.result_code is OK)  # a session to report on (an empty account ends it)
    assert first.account is not None
    acc = first.account
    for n, used in enumerate(reports, start=1):
        out = charge(acc, cat, ChargeRequest("s", UPDATE, n, MSISDN, (data(used),)), NOW)
        if used > MAX_UNITS:
            assert out.answer.result_code is REFUSED and out.account is None
            continue
        assert out.account is not None
        acc = out.account
        for event in out.events:
            assert all(-INT64_MAX - 1 <= v <= INT64_MAX for v in _ints(event)), event
            assert event.units == event.bucket_units + event.wallet_units + event.uncharged_units
        assert acc.wallet >= 0
        assert acc.sessions["s"].services[1].used <= MAX_SESSION_UNITS
