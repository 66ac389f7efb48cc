"""The schema holds what the edges let in: its column sizes come from `domain/limits.py`, request
numbers are 64-bit everywhere (migration 0006), and Oracle keeps its INTEGER (NUMBER(38))."""

from __future__ import annotations

import pytest
from sqlalchemy import BigInteger, String
from sqlalchemy.dialects import oracle, postgresql, sqlite
from sqlalchemy.schema import CreateTable

from cellcelly.adapters.sql.migrator import offline_sql
from cellcelly.adapters.sql.schema import balance_snapshots, usage_buckets, usage_records
from cellcelly.domain.limits import EVENT_ID_COLUMN, MAX_SESSION_ID, MAX_USAGE_EVENT_ID

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]


def length(column: object) -> int | None:
    assert isinstance(column.type, String)  # type: ignore[attr-defined]
    return column.type.length  # type: ignore[attr-defined, no-any-return]


def test_column_sizes_come_from_the_limits() -> None:
    assert length(usage_records.c.session_id) == MAX_SESSION_ID
    for column in (usage_records.c.event_id, usage_buckets.c.event_id, balance_snapshots.c.event_id):
        assert length(column) == EVENT_ID_COLUMN >= MAX_USAGE_EVENT_ID


@pytest.mark.parametrize(
    ("dialect", "expected"),
    [(postgresql.dialect(), "BIGINT"), (sqlite.dialect(), "BIGINT"), (oracle.dialect(), "INTEGER")],  # type: ignore[no-untyped-call]
)
def test_request_numbers_are_64_bit_on_every_back_end(dialect: object, expected: str) -> None:
    ddl = str(CreateTable(usage_records).compile(dialect=dialect))  # type: ignore[arg-type]
    assert f"request_number {expected} NOT NULL" in ddl
    assert isinstance(usage_records.c.request_number.type, BigInteger)


def _step(sql: str, revision: str) -> str:
    start = sql.index(f"-> {revision}")
    end = sql.find("-- Running upgrade", start)
    return sql[start : end if end >= 0 else None]


def test_migration_0006_widens_postgresql_and_leaves_oracle_alone() -> None:
    assert "ALTER TABLE usage_records ALTER COLUMN request_number TYPE BIGINT" in _step(
        offline_sql("postgresql"), "0006"
    )
    assert "request_number" not in _step(offline_sql("oracle"), "0006")  # NUMBER(38) already
    down = offline_sql("postgresql", upgrade=False)
    assert "ALTER TABLE usage_records ALTER COLUMN request_number TYPE INTEGER" in down
