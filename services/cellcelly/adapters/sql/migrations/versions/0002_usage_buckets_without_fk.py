"""usage_buckets without its foreign key to usage_records.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 00:00:00

Why: the SF inserts a usage record and its consumed-bucket rows for every debit in the network,
and on PostgreSQL the foreign key's per-row parent check (a key-share lock on the parent row)
halved that insert rate (binary COPY of 50k events: ~38k/s with the key, ~100k/s without). The
rows are only ever written by `SqlRecords.record_usage`, in the same transaction as their usage
record, so the key guarded nothing the code does not already guarantee. SQLite needs a batch
(table copy) to drop a constraint; PostgreSQL and Oracle drop it in place.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FK = "fk_usage_buckets_event_id"


def upgrade() -> None:
    with op.batch_alter_table("usage_buckets") as batch:
        batch.drop_constraint(FK, type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("usage_buckets") as batch:
        batch.create_foreign_key(FK, "usage_records", ["event_id"], ["event_id"])
