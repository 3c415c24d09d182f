"""Login known clients: the addresses that proved an account's password, and when last.

Revision ID: 0007_login_known_clients
Revises: 0006_jobs
Create Date: 2026-12-01 09:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_login_known_clients"
down_revision: str | Sequence[str] | None = "0006_jobs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the login_known_clients table."""
    op.create_table(
        "login_known_clients",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_known_clients")),
        sa.UniqueConstraint("email", "client", name=op.f("uq_login_known_clients_email_client")),
    )
    op.create_index(
        op.f("ix_login_known_clients_last_login_at"), "login_known_clients", ["last_login_at"]
    )


def downgrade() -> None:
    """Drop the login_known_clients table."""
    op.drop_table("login_known_clients")
