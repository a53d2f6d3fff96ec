"""The conversations tables: folders, conversations, their messages (a tree) and tags.

Messages are rows, never a blob: appending one inserts a row and touches its conversation, whatever
the conversation's length. Each message points at its parent; editing or regenerating adds a sibling,
and a conversation's ``leaf_id`` marks the end of the branch shown (the active path is the walk from
there to the root). ``depth`` is the distance from the root: history is cut at depths that are
multiples of a block, so what goes to the model keeps a stable prefix.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from avocado.db.base import Base, UtcDateTime

__all__ = ["Conversation", "ConversationTag", "Folder", "Message", "new_id"]


def new_id() -> str:
    """A new row's id: a uuid4, as text."""
    return str(uuid.uuid4())


class Folder(Base):
    __tablename__ = "folders"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    parent_id: Mapped[str | None] = mapped_column(
        ForeignKey("folders.id", ondelete="CASCADE"), nullable=True, index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Conversation(Base):
    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    folder_id: Mapped[str | None] = mapped_column(
        ForeignKey("folders.id", ondelete="SET NULL"), nullable=True, index=True
    )
    title: Mapped[str] = mapped_column(String(300))
    title_source: Mapped[str] = mapped_column(String(8))  # new | model | user
    model: Mapped[str] = mapped_column(String(200))
    system: Mapped[str | None] = mapped_column(Text, nullable=True)
    options: Mapped[dict[str, Any]] = mapped_column(JSON)
    summarise: Mapped[bool] = mapped_column(Boolean)  # summarise turns left out of the context
    summary: Mapped[str | None] = mapped_column(Text, nullable=True)
    summary_depth: Mapped[int | None] = mapped_column(Integer, nullable=True)  # it covers depths below
    leaf_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    message_count: Mapped[int] = mapped_column(Integer)
    # Moved by every write that changes a message on a path (a send, an answer's end or continuation):
    # a path kept in memory is used only while the version is the one it was kept at
    version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    pinned: Mapped[bool] = mapped_column(Boolean)
    archived: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    # The sidebar's page: mine, archived or not, pinned first, newest first (keyset on the rest)
    __table_args__ = (Index("ix_conversations_list", "user_id", "archived", "pinned", "updated_at", "id"),)


class Message(Base):
    __tablename__ = "messages"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(36))  # the conversation's: search is scoped by it
    parent_id: Mapped[str | None] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), nullable=True
    )
    role: Mapped[str] = mapped_column(String(16))  # user | assistant
    content: Mapped[str] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)  # the answer's model
    depth: Mapped[int] = mapped_column(Integer)
    tokens: Mapped[int] = mapped_column(Integer)  # reported by the model for answers, else estimated
    usage: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    status: Mapped[str] = mapped_column(String(16))  # done | generating | stopped | failed | interrupted
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    done_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    context_depth: Mapped[int | None] = mapped_column(Integer, nullable=True)  # first depth sent
    stop_requested: Mapped[bool] = mapped_column(Boolean)
    # The answers one send asked of several models at once share it (shown side by side); else null
    send_id: Mapped[str | None] = mapped_column(String(36), nullable=True, default=None)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)  # a generating answer's heartbeat

    __table_args__ = (
        Index("ix_messages_conversation_id_parent_id", "conversation_id", "parent_id"),
        Index("ix_messages_conversation_id_created_at", "conversation_id", "created_at"),
        Index("ix_messages_status_updated_at", "status", "updated_at"),
    )


class ConversationTag(Base):
    __tablename__ = "conversation_tags"

    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
