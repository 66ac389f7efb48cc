"""An index on notices.told_at, for pruning told notices.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 07:00:00

The notifier forgets notices told longer ago than the bus could deliver them again; without the
index each prune scans every notice ever told.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(op.f("ix_notices_told_at"), "notices", ["told_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_notices_told_at"), table_name="notices")
