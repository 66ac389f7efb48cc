"""Request numbers as BIGINT (the JSON API and Diameter accept up to 2^32-1).

An INTEGER column is signed 32-bit on PostgreSQL: a request number of 2^31 or more was answered
2001 and then failed every batch of the SF that wrote it. Oracle's INTEGER is NUMBER(38), which
holds it already (and Oracle refuses to narrow a filled column to NUMBER(19)), so Oracle is left
as it is; SQLite recreates the table (it cannot alter a column's type in place).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _alter(old: sa.types.TypeEngine[int], new: sa.types.TypeEngine[int]) -> None:
    if op.get_context().dialect.name == "oracle":
        return
    with op.batch_alter_table("usage_records") as batch:
        batch.alter_column("request_number", existing_type=old, type_=new, existing_nullable=False)


def upgrade() -> None:
    _alter(sa.Integer(), sa.BigInteger())


def downgrade() -> None:
    _alter(sa.BigInteger(), sa.Integer())
