"""Notices: the notifier's "told once" fact in the record, claimed before the send.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 00:00:00

Why: the notifier kept the ids it had sent in a file of its own data dir, so a second replica, or
one restarted on an emptyDir, told the same notice again. A replica now inserts the event id
before it sends (the primary key decides who sends) and sets `told_at` after; a claim left
unfinished by a crash is taken over once its lease has passed (adapters/sql/notices.py).
The old sent-logs are not imported: at worst a notice in a batch not yet committed is told again.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "notices",
        sa.Column("event_id", sa.String(300), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("claimed_at", sa.DateTime(), nullable=False),
        sa.Column("told_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("event_id", name="pk_notices"),
    )


def downgrade() -> None:
    op.drop_table("notices")
