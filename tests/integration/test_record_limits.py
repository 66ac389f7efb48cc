"""The system of record holds every value the edges accept (`domain/limits.py`), on SQLite and a
real PostgreSQL: a usage event at every limit lands and reads back the same (the bulk COPY path on
PostgreSQL included), and migration 0006 widens a filled INTEGER column to BIGINT."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from cellcelly.adapters.sql import SqlRecords, migrate
from cellcelly.domain.charging import UsageEvent
from cellcelly.domain.limits import MAX_RATING_GROUP, MAX_REQUEST_NUMBER, MAX_SESSION_ID, MAX_UNITS
from cellcelly.domain.units import Service

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
MSISDN = "5321234567"
T0 = 1_735_689_600


def at_the_limits(sid: str = "s" * MAX_SESSION_ID, number: int = MAX_REQUEST_NUMBER) -> UsageEvent:
    return UsageEvent(
        event_id=f"{sid}#{number}#{MAX_RATING_GROUP}",
        msisdn=MSISDN,
        session_id=sid,
        request_number=number,
        rating_group=MAX_RATING_GROUP,
        service=Service.DATA,
        rule_id="data-tr",
        units=MAX_UNITS,
        bucket_units=MAX_UNITS // 2,
        wallet_units=MAX_UNITS // 4,
        uncharged_units=MAX_UNITS // 4,
        money=10**11,
        wallet_after=0,
        occurred_at=T0,
        buckets=(("b" * 200, MAX_UNITS // 2),),
    )


def test_a_usage_event_at_every_limit_lands_and_reads_back(records: SqlRecords) -> None:
    event = at_the_limits()
    assert records.record_usage([event]) == 1
    assert records.record_usage([event]) == 0  # idempotent at the limits too
    [back] = records.usage_for(MSISDN)
    assert replace(back, buckets=event.buckets, revision=event.revision) == event
    assert records.bucket_consumption(MSISDN) == {"b" * 200: MAX_UNITS // 2}


def test_migration_0006_widens_a_filled_column(db_url: str) -> None:
    migrate(db_url, "0005")
    engine = create_engine(db_url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO usage_records (event_id, msisdn, session_id, request_number, rating_group,"
                    " service, rule_id, units, bucket_units, wallet_units, uncharged_units, money,"
                    " wallet_after, occurred_at) VALUES ('old#7#1', :m, 'old', 7, 1, 'data', 'r', 5, 0, 5,"
                    " 0, 1, 99, :t)"
                ),
                {"m": MSISDN, "t": "2025-01-01 00:00:00"},
            )
    finally:
        engine.dispose()
    migrate(db_url)
    records = SqlRecords(db_url)
    try:
        assert [e.request_number for e in records.usage_for(MSISDN)] == [7]  # kept
        assert records.record_usage([at_the_limits("new")]) == 1
        assert sorted(e.request_number for e in records.usage_for(MSISDN)) == [7, MAX_REQUEST_NUMBER]
    finally:
        records.close()
