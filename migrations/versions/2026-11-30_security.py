"""Security: login time on refresh tokens, client on login failures, parent of API keys.

Revision ID: 0005_security
Revises: 0004_idempotency_keys
Create Date: 2026-11-30 09:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_security"
down_revision: str | Sequence[str] | None = "0004_idempotency_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the columns; existing refresh tokens count as authenticated when they were issued."""
    with op.batch_alter_table("refresh_tokens") as batch:
        batch.add_column(sa.Column("authenticated_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE refresh_tokens SET authenticated_at = created_at")
    with op.batch_alter_table("refresh_tokens") as batch:
        batch.alter_column(
            "authenticated_at", existing_type=sa.DateTime(timezone=True), nullable=False
        )
    with op.batch_alter_table("login_failures") as batch:
        batch.add_column(
            sa.Column("client", sa.String(length=64), nullable=False, server_default="")
        )
    with op.batch_alter_table("login_failures") as batch:
        batch.alter_column("client", existing_type=sa.String(length=64), server_default=None)
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("parent_id", sa.Uuid(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_api_keys_parent_id_api_keys"),
            "api_keys",
            ["parent_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.create_index(op.f("ix_api_keys_parent_id"), ["parent_id"])


def downgrade() -> None:
    """Drop the columns."""
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_index(op.f("ix_api_keys_parent_id"))
        batch.drop_constraint(op.f("fk_api_keys_parent_id_api_keys"), type_="foreignkey")
        batch.drop_column("parent_id")
    with op.batch_alter_table("login_failures") as batch:
        batch.drop_column("client")
    with op.batch_alter_table("refresh_tokens") as batch:
        batch.drop_column("authenticated_at")
