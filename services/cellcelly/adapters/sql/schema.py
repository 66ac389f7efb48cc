"""Tables of the system of record, in portable SQLAlchemy Core types only.

The same `metadata` must create and serve SQLite, PostgreSQL and Oracle, so the columns use
String(n), Text, Integer, BigInteger and DateTime only: no JSON, no Boolean, no autoincrement,
no dialect-specific types. Constraint and index names come from a naming convention (or are
given explicitly) so they are deterministic and at most 30 characters, Oracle's classic limit.

Times are stored as naive UTC `DateTime` (Oracle `DATE`, PostgreSQL `timestamp without time
zone`); the Python side uses integer epoch seconds, converted at the boundary by `EpochSeconds`.

Oracle stores an empty string as NULL, so every text column other than the keys, `msisdn` and
`service` is nullable, and the adapter reads NULL back as "" (the same result on every back end).

The Alembic revision `0001_initial` spells out the same tables with explicit names; an
integration test compares the migrated database against this metadata.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.types import TypeDecorator

from cellcelly.domain.limits import EVENT_ID_COLUMN, MAX_SESSION_ID

__all__ = [
    "EPOCH",
    "MAX_IDENTIFIER_LENGTH",
    "NAMING_CONVENTION",
    "EpochSeconds",
    "buckets",
    "catalogue_in_force",
    "catalogue_versions",
    "credentials",
    "from_epoch",
    "metadata",
    "package_renewals",
    "refresh_tokens",
    "reset_codes",
    "subscribers",
    "to_epoch",
    "usage_buckets",
    "usage_records",
    "vouchers",
    "wallet_ledger",
]

TEXT_COLUMN = 128  # a usage record's destination, location and catalogue version (an APN is <= 100)
MAX_IDENTIFIER_LENGTH = 30  # Oracle before 12.2; newer allow 128 but we keep to 30

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_label)s",  # composite indexes are named explicitly
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

EPOCH = datetime(1970, 1, 1)  # naive UTC
_SECOND = timedelta(seconds=1)


def from_epoch(seconds: int) -> datetime:
    """Integer epoch seconds (UTC) -> naive UTC datetime."""
    return EPOCH + timedelta(seconds=int(seconds))


def to_epoch(moment: datetime) -> int:
    """Naive UTC (or aware) datetime -> integer epoch seconds, fractions dropped."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return (moment - EPOCH) // _SECOND


class EpochSeconds(TypeDecorator[int]):
    """An int of epoch seconds in Python, a naive UTC DateTime in the database."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, datetime):
            return value
        return from_epoch(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        if value is None:
            return None
        if isinstance(value, str):  # defensive: SQLite returns text if the type is bypassed
            value = datetime.fromisoformat(value)
        return to_epoch(value)


subscribers = Table(
    "subscribers",
    metadata,
    Column("msisdn", String(15), primary_key=True),
    Column("first_name", String(100)),
    Column("last_name", String(100)),
    Column("email", String(254)),
    Column("status", String(16)),
    Column("package", String(32)),
    Column("created_at", EpochSeconds(), nullable=False),
)

buckets = Table(
    "buckets",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("msisdn", String(15), nullable=False, index=True),
    Column("package", String(32)),
    Column("service", String(8), nullable=False),
    Column("units", BigInteger, nullable=False),
    Column("valid_from", EpochSeconds(), nullable=False),
    Column("valid_until", EpochSeconds(), nullable=False),
    Index("ix_buckets_valid_until", "valid_until"),  # the notifier's package-expiry sweep
)

wallet_ledger = Table(
    "wallet_ledger",
    metadata,
    Column("event_id", String(200), primary_key=True),
    Column("msisdn", String(15), nullable=False, index=True),
    Column("kind", String(16)),
    Column("amount", BigInteger, nullable=False),
    Column("wallet_after", BigInteger, nullable=False),
    Column("reference", String(200)),
    Column("package", String(32)),
    Column("status", String(16)),
    Column("occurred_at", EpochSeconds(), nullable=False),
)

# Up to 2^32 - 1 (Diameter's Unsigned32; migration 0006). Oracle keeps INTEGER, which is
# NUMBER(38) there: it already holds it, and narrowing a filled column to NUMBER(19) is refused.
REQUEST_NUMBER = BigInteger().with_variant(Integer(), "oracle")

usage_records = Table(
    "usage_records",
    metadata,
    Column("event_id", String(EVENT_ID_COLUMN), primary_key=True),
    # msisdn lookups use the leading column of ix_usage_records_msisdn_time; a separate
    # single-column index would only slow down the hottest insert path.
    Column("msisdn", String(15), nullable=False),
    Column("session_id", String(MAX_SESSION_ID)),
    Column("request_number", REQUEST_NUMBER, nullable=False),
    Column("rating_group", BigInteger, nullable=False),
    Column("service", String(8), nullable=False),
    Column("rule_id", String(64)),
    Column("units", BigInteger, nullable=False),
    Column("bucket_units", BigInteger, nullable=False),
    Column("wallet_units", BigInteger, nullable=False),
    Column("uncharged_units", BigInteger, nullable=False),
    Column("money", BigInteger, nullable=False),
    Column("wallet_after", BigInteger, nullable=False),
    Column("occurred_at", EpochSeconds(), nullable=False),
    # for CDRs and rerating (migration 0012): the event's own values, cut to the column (the bus
    # carries them whole); empty on records written before
    Column("destination", String(TEXT_COLUMN)),
    Column("location", String(TEXT_COLUMN)),
    Column("catalogue_version", String(TEXT_COLUMN)),
    Index("ix_usage_records_msisdn_time", "msisdn", "occurred_at"),
)

# UsageEvent.buckets: the (bucket id, units) pairs one usage event consumed, in order. Written
# only with their usage record, in its transaction; no foreign key (migration 0002 says why).
usage_buckets = Table(
    "usage_buckets",
    metadata,
    Column("event_id", String(EVENT_ID_COLUMN), primary_key=True),
    Column("ordinal", Integer, primary_key=True, autoincrement=False),
    Column("bucket_id", String(200), nullable=False),
    Column("units", BigInteger, nullable=False),
)

# The wallet as of a subscriber's latest event the SF has written (the real-time value lives in the
# balance store): what reports and self-care read without asking the charging path. "Latest" is
# (as_of, revision), and within one commit the lowest wallet (its debits come in order).
balance_snapshots = Table(
    "balance_snapshots",
    metadata,
    Column("msisdn", String(15), primary_key=True),
    Column("wallet", BigInteger, nullable=False),
    Column("revision", BigInteger, nullable=False),
    Column("as_of", EpochSeconds(), nullable=False),
    Column("event_id", String(EVENT_ID_COLUMN), nullable=False),
)

catalogue_versions = Table(
    "catalogue_versions",
    metadata,
    Column("version", String(64), primary_key=True),
    Column("source", Text),
    Column("activated_at", EpochSeconds(), nullable=False),
)

# The version every OCS charges with (migration 0009): one row (slot 1), its `generation` bumped on
# every activation so a poll of this row alone tells a change, even back to an older version.
catalogue_in_force = Table(
    "catalogue_in_force",
    metadata,
    Column("slot", Integer, primary_key=True, autoincrement=False),
    Column("version", String(64), nullable=False),
    Column("generation", BigInteger, nullable=False),
    Column("activated_at", EpochSeconds(), nullable=False),
)

# --- self-care (migration 0005): hashes only, never a password, code or token in the clear ------

credentials = Table(
    "credentials",
    metadata,
    Column("msisdn", String(15), primary_key=True),
    Column("password_hash", String(200), nullable=False),
    Column("security_key_hash", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    Column("failed_logins", Integer, nullable=False),
    Column("locked_until", EpochSeconds(), nullable=False),
    Column("changed_at", EpochSeconds(), nullable=False),
    # bumped on role and password changes; access tokens carry it and admin routes compare (0008)
    Column("version", Integer, nullable=False, server_default=text("0")),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("msisdn", String(15), nullable=False, index=True),
    Column("expires_at", EpochSeconds(), nullable=False),
    Column("created_at", EpochSeconds(), nullable=False),
    Column("remember", Integer, nullable=False),  # 0/1 (no BOOLEAN in Oracle before 23)
    Column("revoked", Integer, nullable=False),
    # the login a rotated token descends from: a used token replayed revokes the family (0008).
    # Every insert sets it; NULL-able only so 0008 adds it in place on SQLite, PostgreSQL, Oracle
    Column("family", String(64), index=True),
)

reset_codes = Table(
    "reset_codes",
    metadata,
    Column("msisdn", String(15), primary_key=True),
    Column("code_hash", String(64), nullable=False),
    Column("expires_at", EpochSeconds(), nullable=False),
    Column("created_at", EpochSeconds(), nullable=False),
    Column("attempts", Integer, nullable=False),
)

vouchers = Table(
    "vouchers",
    metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("amount", BigInteger, nullable=False),
    Column("batch", String(64)),
    Column("created_at", EpochSeconds(), nullable=False),
    Column("used_by", String(15)),
    Column("used_at", EpochSeconds()),
    # set in the transaction that made its top-up (migration 0007): "used" alone is a claim, and a
    # claim without a credit is finished by its claimer's retry (application/selfcare.py)
    Column("credited_at", EpochSeconds()),
)

# A subscriber's choice to renew a package from the wallet when it ends (migration 0013), and the
# end of the last period a renewal was tried for, so each period's end is tried once.
package_renewals = Table(
    "package_renewals",
    metadata,
    Column("msisdn", String(15), primary_key=True),
    Column("package", String(32), primary_key=True),
    Column("chosen_at", EpochSeconds(), nullable=False),
    Column("tried_until", EpochSeconds()),  # the valid_until of the period last renewed (or tried)
)
