"""Initial schema of the system of record.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00

Portable types only (String(n), Text, Integer, BigInteger, DateTime), explicit constraint and
index names of at most 30 characters: the same revision runs on SQLite, PostgreSQL and Oracle.
Times are naive UTC DateTime (Oracle DATE). Text columns that may hold "" are nullable because
Oracle stores "" as NULL. Keep in step with `cellcelly.adapters.sql.schema`.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "subscribers",
        sa.Column("msisdn", sa.String(15), nullable=False),
        sa.Column("first_name", sa.String(100), nullable=True),
        sa.Column("last_name", sa.String(100), nullable=True),
        sa.Column("email", sa.String(254), nullable=True),
        sa.Column("status", sa.String(16), nullable=True),
        sa.Column("package", sa.String(32), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("msisdn", name=op.f("pk_subscribers")),
    )

    op.create_table(
        "buckets",
        sa.Column("id", sa.String(200), nullable=False),
        sa.Column("msisdn", sa.String(15), nullable=False),
        sa.Column("package", sa.String(32), nullable=True),
        sa.Column("service", sa.String(8), nullable=False),
        sa.Column("units", sa.BigInteger(), nullable=False),
        sa.Column("valid_from", sa.DateTime(), nullable=False),
        sa.Column("valid_until", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_buckets")),
    )
    op.create_index(op.f("ix_buckets_msisdn"), "buckets", ["msisdn"])

    op.create_table(
        "wallet_ledger",
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("msisdn", sa.String(15), nullable=False),
        sa.Column("kind", sa.String(16), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("wallet_after", sa.BigInteger(), nullable=False),
        sa.Column("reference", sa.String(200), nullable=True),
        sa.Column("package", sa.String(32), nullable=True),
        sa.Column("status", sa.String(16), nullable=True),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_wallet_ledger")),
    )
    op.create_index(op.f("ix_wallet_ledger_msisdn"), "wallet_ledger", ["msisdn"])

    op.create_table(
        "usage_records",
        sa.Column("event_id", sa.String(300), nullable=False),
        sa.Column("msisdn", sa.String(15), nullable=False),
        sa.Column("session_id", sa.String(256), nullable=True),
        sa.Column("request_number", sa.Integer(), nullable=False),
        sa.Column("rating_group", sa.BigInteger(), nullable=False),
        sa.Column("service", sa.String(8), nullable=False),
        sa.Column("rule_id", sa.String(64), nullable=True),
        sa.Column("units", sa.BigInteger(), nullable=False),
        sa.Column("bucket_units", sa.BigInteger(), nullable=False),
        sa.Column("wallet_units", sa.BigInteger(), nullable=False),
        sa.Column("uncharged_units", sa.BigInteger(), nullable=False),
        sa.Column("money", sa.BigInteger(), nullable=False),
        sa.Column("wallet_after", sa.BigInteger(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_usage_records")),
    )
    op.create_index(op.f("ix_usage_records_msisdn_time"), "usage_records", ["msisdn", "occurred_at"])

    op.create_table(
        "usage_buckets",
        sa.Column("event_id", sa.String(300), nullable=False),
        sa.Column("ordinal", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("bucket_id", sa.String(200), nullable=False),
        sa.Column("units", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"], ["usage_records.event_id"], name=op.f("fk_usage_buckets_event_id")
        ),
        sa.PrimaryKeyConstraint("event_id", "ordinal", name=op.f("pk_usage_buckets")),
    )

    op.create_table(
        "catalogue_versions",
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("activated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_catalogue_versions")),
    )


def downgrade() -> None:
    op.drop_table("catalogue_versions")
    op.drop_table("usage_buckets")
    op.drop_index(op.f("ix_usage_records_msisdn_time"), table_name="usage_records")
    op.drop_table("usage_records")
    op.drop_index(op.f("ix_wallet_ledger_msisdn"), table_name="wallet_ledger")
    op.drop_table("wallet_ledger")
    op.drop_index(op.f("ix_buckets_msisdn"), table_name="buckets")
    op.drop_table("buckets")
    op.drop_table("subscribers")
