"""Credentials: a version checked on admin routes; refresh-token families.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 00:00:00

Why: an admin's access token kept its rights for its whole life after a demotion, and a replayed
refresh token did not end the session it was stolen from. `credentials.version` is bumped on every
role or password change and access tokens carry it; `refresh_tokens.family` names the login a
token descends from, so a used token seen again revokes every token of that login. Tokens issued
before this revision become families of their own (family = token_hash).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "credentials", sa.Column("version", sa.Integer(), nullable=False, server_default=sa.text("0"))
    )
    # NULL-able so it is added in place everywhere (SQLite cannot add NOT NULL without a default,
    # Oracle cannot default to ''); every insert sets it, and older tokens get families of their own
    op.add_column("refresh_tokens", sa.Column("family", sa.String(64), nullable=True))
    op.execute("UPDATE refresh_tokens SET family = token_hash")
    op.create_index("ix_refresh_tokens_family", "refresh_tokens", ["family"])


def downgrade() -> None:
    op.drop_index("ix_refresh_tokens_family", table_name="refresh_tokens")
    with op.batch_alter_table("refresh_tokens") as batch:
        batch.drop_column("family")
    with op.batch_alter_table("credentials") as batch:
        batch.drop_column("version")
