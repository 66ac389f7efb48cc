"""Vouchers: credited once, decided from a durable fact (credited_at).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 00:00:00

Why: whether a claimed voucher had been credited was guessed from the account's last 32 top-up
references, so a used voucher presented again after 32 other top-ups was credited again.
`vouchers.credited_at` is set in the transaction that makes the top-up, and decides.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("vouchers", sa.Column("credited_at", sa.DateTime(), nullable=True))
    # Vouchers used before this revision were credited by the request that claimed them. Left NULL,
    # each would look like a claim cut short and be credited again on its next presentation: count
    # them credited (at worst a top-up a crash cut short before this upgrade stays uncredited)
    op.execute("UPDATE vouchers SET credited_at = used_at WHERE used_by IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("vouchers") as batch:  # SQLite: the batch copies the table
        batch.drop_column("credited_at")
