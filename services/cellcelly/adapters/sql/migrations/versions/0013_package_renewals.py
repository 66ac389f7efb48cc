"""Package renewal: a subscriber's choice to renew a package from the wallet when it ends.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 20:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "package_renewals",
        sa.Column("msisdn", sa.String(15), nullable=False),
        sa.Column("package", sa.String(32), nullable=False),
        sa.Column("chosen_at", sa.DateTime(), nullable=False),
        sa.Column("tried_until", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("msisdn", "package", name=op.f("pk_package_renewals")),
    )


def downgrade() -> None:
    op.drop_table("package_renewals")
