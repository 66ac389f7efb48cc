"""A usage record's destination, location and catalogue version: what a CDR and a rerating need.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 19:50:00

Nullable, no default: records written before have none (read back as ""), and adding a nullable
column without a default is a catalogue-only change on PostgreSQL and Oracle (no table rewrite).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("destination", "location", "catalogue_version")


def upgrade() -> None:
    for name in COLUMNS:  # a plain ALTER TABLE ... ADD on every dialect, SQLite's included
        op.add_column("usage_records", sa.Column(name, sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:  # SQLite drops a column by a rebuild
        for name in reversed(COLUMNS):
            batch.drop_column(name)
