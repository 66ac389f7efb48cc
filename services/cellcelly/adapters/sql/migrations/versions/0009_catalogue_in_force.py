"""The catalogue in force, in the record: one row every OCS polls.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 00:00:00

Why: each OCS read its own catalogue file, so an admin change reached one process and was lost on
its restart. `catalogue_in_force` names the version in force (its text is in `catalogue_versions`)
and a `generation` bumped on every activation, so an OCS notices a change, or a return to an older
version, with one one-row query.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "catalogue_in_force",
        sa.Column("slot", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("activated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("slot", name=op.f("pk_catalogue_in_force")),
    )


def downgrade() -> None:
    op.drop_table("catalogue_in_force")
