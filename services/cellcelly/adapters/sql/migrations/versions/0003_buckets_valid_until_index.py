"""An index on buckets.valid_until, for the notifier's package-expiry sweep.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 00:00:00

The sweep asks, for every subscriber at once, which package grants end within the next day;
without the index that is a scan of every bucket ever granted.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(op.f("ix_buckets_valid_until"), "buckets", ["valid_until"])


def downgrade() -> None:
    op.drop_index(op.f("ix_buckets_valid_until"), table_name="buckets")
