"""Personal API keys: a user's keys for the platform's OpenAI-compatible ``/v1`` API.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "personal_api_keys",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("key_prefix", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_personal_api_keys_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_personal_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_personal_api_keys_key_hash")),
    )
    op.create_index(op.f("ix_personal_api_keys_user_id"), "personal_api_keys", ["user_id"], unique=False)
    op.create_index(
        "ix_personal_api_keys_user_id_created_at",
        "personal_api_keys",
        ["user_id", "created_at", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_personal_api_keys_user_id_created_at", table_name="personal_api_keys")
    op.drop_index(op.f("ix_personal_api_keys_user_id"), table_name="personal_api_keys")
    op.drop_table("personal_api_keys")
