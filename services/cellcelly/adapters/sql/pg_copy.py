"""PostgreSQL's bulk paths: usage records by binary COPY, balance snapshots by one upsert.

The SF writes every usage event of the network, so this is the hottest insert of the system of
record. Measured here (50k events with their consumed buckets, batches of 2000): executemany
INSERT ~11k events/s, binary COPY ~38k/s with the usage_buckets foreign key (dropped by migration
0002) and ~100k/s without. Rows go to COPY as tuples in column order, straight from the events
(no dict per row), and the snapshot upsert's arrays are sent in binary (psycopg's text arrays
cost a regular-expression search per element). `SqlRecords.record_usage` COPYs a batch without
asking which ids exist; a unique violation (a redelivered batch, or a concurrent writer) is
raised here as SQLAlchemy's `IntegrityError`, and the caller then writes the batch the careful
way, leaving out the ids present.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from sqlalchemy import BigInteger, Connection, Integer, String, Table
from sqlalchemy.exc import IntegrityError

from cellcelly.adapters.sql.schema import EpochSeconds, from_epoch, usage_buckets, usage_records
from cellcelly.adapters.sql.usage_rows import usage_bucket_values, usage_values
from cellcelly.domain.charging import UsageEvent

__all__ = ["copy_usage"]

_TYPES: list[tuple[type[Any], str]] = [
    (BigInteger, "int8"),  # before Integer, its base class
    (Integer, "int4"),
    (String, "text"),
    (EpochSeconds, "timestamp"),
]


def _pg_type(column_type: Any) -> str:
    for python_type, name in _TYPES:
        if isinstance(column_type, python_type):
            return name
    raise TypeError(f"no binary COPY type for {column_type!r}")


class _Copy:
    """COPY ... FROM STDIN (FORMAT BINARY) of rows (tuples in column order) into one table."""

    def __init__(self, table: Table) -> None:
        self.columns = [c.name for c in table.columns]
        self.types = [_pg_type(c.type) for c in table.columns]
        self.epoch = [i for i, c in enumerate(table.columns) if isinstance(c.type, EpochSeconds)]
        self.sql = f"COPY {table.name} ({', '.join(self.columns)}) FROM STDIN (FORMAT BINARY)"

    def write(self, cursor: psycopg.Cursor[Any], rows: Iterable[Sequence[Any]]) -> None:
        with cursor.copy(self.sql) as copy:
            copy.set_types(self.types)
            for row in rows:
                if self.epoch:
                    row = list(row)
                    for i in self.epoch:
                        row[i] = from_epoch(row[i])
                copy.write_row(row)


_USAGE = _Copy(usage_records)
_BUCKETS = _Copy(usage_buckets)


def copy_usage(conn: Connection, events: Sequence[UsageEvent]) -> None:
    """COPY usage records and their consumed-bucket rows inside the connection's transaction."""
    if not events:
        return
    dbapi = conn.connection.driver_connection
    assert isinstance(dbapi, psycopg.Connection)
    with dbapi.cursor() as cursor:
        try:
            _USAGE.write(cursor, map(usage_values, events))
            consumed = [row for e in events for row in usage_bucket_values(e)]
            if consumed:
                _BUCKETS.write(cursor, consumed)
        except psycopg.errors.IntegrityError as exc:
            raise IntegrityError(_USAGE.sql, None, exc) from exc


_UPSERT_BALANCES = """
INSERT INTO balance_snapshots AS s (msisdn, wallet, revision, as_of, event_id)
SELECT * FROM unnest(%b::text[], %b::int8[], %b::int8[], %b::timestamp[], %b::text[])
ON CONFLICT (msisdn) DO UPDATE
SET wallet = EXCLUDED.wallet, revision = EXCLUDED.revision, as_of = EXCLUDED.as_of,
    event_id = EXCLUDED.event_id
WHERE (s.as_of, s.revision) < (EXCLUDED.as_of, EXCLUDED.revision)
   OR ((s.as_of, s.revision) = (EXCLUDED.as_of, EXCLUDED.revision) AND s.wallet > EXCLUDED.wallet)
"""


def upsert_balances(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """One statement for a batch of snapshot rows (one per subscriber): insert, or replace an
    older one; the same rule as `queries.update_older_snapshot`, decided under the row lock."""
    dbapi = conn.connection.driver_connection
    assert isinstance(dbapi, psycopg.Connection)
    columns = ("msisdn", "wallet", "revision", "as_of", "event_id")
    arrays = [[row[c] for row in rows] for c in columns]
    arrays[3] = [from_epoch(v) for v in arrays[3]]
    with dbapi.cursor() as cursor:
        cursor.execute(_UPSERT_BALANCES, arrays)
