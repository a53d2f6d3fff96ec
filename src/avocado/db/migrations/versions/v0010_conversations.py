"""Conversations: folders, conversations, their messages (a tree of rows), tags, and full-text search.

Search is made by hand per database: on SQLite, FTS5 tables kept in step by triggers (a message is
indexed once it is written, and leaves with its row; each row carries its owner as a token, so a
search reads only the caller's postings); on PostgreSQL a generated ``tsvector`` column and a GIN
index on (owner, vector) (``btree_gin``; a plain GIN on the vector where that extension may not be
made).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "folders",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("parent_id", sa.String(length=36), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["folders.id"], name=op.f("fk_folders_parent_id_folders"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_folders_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_folders")),
    )
    with op.batch_alter_table("folders", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_folders_parent_id"), ["parent_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_folders_user_id"), ["user_id"], unique=False)

    op.create_table(
        "conversations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("folder_id", sa.String(length=36), nullable=True),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("title_source", sa.String(length=8), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("system", sa.Text(), nullable=True),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("summarise", sa.Boolean(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("summary_depth", sa.Integer(), nullable=True),
        sa.Column("leaf_id", sa.String(length=36), nullable=True),
        sa.Column("message_count", sa.Integer(), nullable=False),
        sa.Column("pinned", sa.Boolean(), nullable=False),
        sa.Column("archived", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["folder_id"],
            ["folders.id"],
            name=op.f("fk_conversations_folder_id_folders"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_conversations_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversations")),
    )
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_conversations_folder_id"), ["folder_id"], unique=False)
        batch_op.create_index(
            "ix_conversations_list", ["user_id", "archived", "pinned", "updated_at", "id"], unique=False
        )

    op.create_table(
        "conversation_tags",
        sa.Column("conversation_id", sa.String(length=36), nullable=False),
        sa.Column("tag", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_conversation_tags_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("conversation_id", "tag", name=op.f("pk_conversation_tags")),
    )
    with op.batch_alter_table("conversation_tags", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_conversation_tags_tag"), ["tag"], unique=False)

    op.create_table(
        "messages",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("conversation_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("parent_id", sa.String(length=36), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("usage", sa.JSON(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("done_reason", sa.String(length=32), nullable=True),
        sa.Column("context_depth", sa.Integer(), nullable=True),
        sa.Column("stop_requested", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_messages_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["messages.id"], name=op.f("fk_messages_parent_id_messages"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_messages_conversation_id_created_at", ["conversation_id", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_messages_conversation_id_parent_id", ["conversation_id", "parent_id"], unique=False
        )
        batch_op.create_index("ix_messages_status_updated_at", ["status", "updated_at"], unique=False)

    if op.get_bind().dialect.name == "sqlite":
        _sqlite_search()
    else:
        _postgres_search()


OWNER = "'u' || replace({}, '-', '')"  # a user's id as one token

SQLITE_SEARCH = [
    "CREATE VIRTUAL TABLE messages_fts USING fts5(owner, body, tokenize='unicode61 remove_diacritics 2')",
    "CREATE VIRTUAL TABLE conversations_fts USING fts5(owner, title, tokenize='unicode61 remove_diacritics 2')",  # noqa: E501
    f"""CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages WHEN new.status <> 'generating'
    BEGIN INSERT INTO messages_fts(rowid, owner, body) VALUES (new.rowid, {OWNER.format("new.user_id")},
    new.content); END""",
    f"""CREATE TRIGGER messages_fts_written AFTER UPDATE OF status ON messages
    WHEN old.status = 'generating' AND new.status <> 'generating'
    BEGIN DELETE FROM messages_fts WHERE rowid = new.rowid;
    INSERT INTO messages_fts(rowid, owner, body) VALUES (new.rowid, {OWNER.format("new.user_id")},
    new.content); END""",
    """CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
    BEGIN DELETE FROM messages_fts WHERE rowid = old.rowid; END""",
    f"""CREATE TRIGGER conversations_fts_insert AFTER INSERT ON conversations
    BEGIN INSERT INTO conversations_fts(rowid, owner, title) VALUES (new.rowid, {OWNER.format("new.user_id")},
    new.title); END""",
    f"""CREATE TRIGGER conversations_fts_title AFTER UPDATE OF title ON conversations
    BEGIN DELETE FROM conversations_fts WHERE rowid = old.rowid;
    INSERT INTO conversations_fts(rowid, owner, title) VALUES (new.rowid, {OWNER.format("new.user_id")},
    new.title); END""",
    """CREATE TRIGGER conversations_fts_delete AFTER DELETE ON conversations
    BEGIN DELETE FROM conversations_fts WHERE rowid = old.rowid; END""",
]


def _sqlite_search() -> None:
    for statement in SQLITE_SEARCH:
        op.execute(statement)


def _postgres_search() -> None:
    op.execute(
        "ALTER TABLE messages ADD COLUMN search_vector tsvector "
        "GENERATED ALWAYS AS (to_tsvector('simple', content)) STORED"
    )
    bind = op.get_bind()
    try:
        with bind.begin_nested():
            bind.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS btree_gin")
            bind.exec_driver_sql(
                "CREATE INDEX ix_messages_search ON messages USING gin (user_id, search_vector)"
            )
    except sa.exc.DBAPIError:  # no btree_gin here: the vector alone, filtered by owner after
        op.execute("CREATE INDEX ix_messages_search ON messages USING gin (search_vector)")
    op.execute(
        "CREATE INDEX ix_conversations_search ON conversations USING gin (to_tsvector('simple', title))"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in (
            "messages_fts_insert",
            "messages_fts_written",
            "messages_fts_delete",
            "conversations_fts_insert",
            "conversations_fts_title",
            "conversations_fts_delete",
        ):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS messages_fts")
        op.execute("DROP TABLE IF EXISTS conversations_fts")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_status_updated_at")
        batch_op.drop_index("ix_messages_conversation_id_parent_id")
        batch_op.drop_index("ix_messages_conversation_id_created_at")

    op.drop_table("messages")
    with op.batch_alter_table("conversation_tags", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_conversation_tags_tag"))

    op.drop_table("conversation_tags")
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_index("ix_conversations_list")
        batch_op.drop_index(batch_op.f("ix_conversations_folder_id"))

    op.drop_table("conversations")
    with op.batch_alter_table("folders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_folders_user_id"))
        batch_op.drop_index(batch_op.f("ix_folders_parent_id"))

    op.drop_table("folders")
