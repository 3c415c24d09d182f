"""Items and their tags.

Revision ID: 0003_items
Revises: 0002_users_and_credentials
Create Date: 2026-11-22 17:45:00+00:00
"""

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0003_items"
down_revision: str | Sequence[str] | None = "0002_users_and_credentials"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Create the items tables."""
    op.create_table(
        "items",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "draft", "active", "archived", name="item_status", native_enum=False, length=16
            ),
            nullable=False,
        ),
        sa.Column("price_units", sa.BigInteger(), nullable=False),
        sa.Column("price_scale", sa.SmallInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        _timestamp("deleted_at", nullable=True),
        sa.CheckConstraint("price_units >= 0", name=op.f("ck_items_price_not_negative")),
        sa.CheckConstraint("price_scale BETWEEN 0 AND 4", name=op.f("ck_items_price_scale_range")),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_items_owner_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_items")),
    )
    op.create_index(op.f("ix_items_owner_id"), "items", ["owner_id"])
    op.create_index(op.f("ix_items_deleted_at"), "items", ["deleted_at"])
    # The list's default order and its keyset cursor, per owner.
    op.create_index("ix_items_owner_id_created_at_id", "items", ["owner_id", "created_at", "id"])
    op.create_table(
        "item_tags",
        sa.Column("item_id", sa.Uuid(), nullable=False),
        sa.Column("tag", sa.String(length=32), nullable=False),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"], ["items.id"], name=op.f("fk_item_tags_item_id_items"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("item_id", "tag", name=op.f("pk_item_tags")),
    )
    op.create_index(op.f("ix_item_tags_tag"), "item_tags", ["tag"])


def downgrade() -> None:
    """Drop the items tables."""
    op.drop_table("item_tags")
    op.drop_table("items")
