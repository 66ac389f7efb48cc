"""balance_snapshots: each subscriber's wallet as of the latest event the SF wrote.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "balance_snapshots",
        sa.Column("msisdn", sa.String(15), nullable=False),
        sa.Column("wallet", sa.BigInteger(), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("as_of", sa.DateTime(), nullable=False),
        sa.Column("event_id", sa.String(300), nullable=False),
        sa.PrimaryKeyConstraint("msisdn", name=op.f("pk_balance_snapshots")),
    )


def downgrade() -> None:
    op.drop_table("balance_snapshots")
