"""The feedback table. Its snapshot of the exchange outlives the conversation, for the admin's export."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from avocado.db.base import Base, UtcDateTime

__all__ = ["Feedback"]


class Feedback(Base):
    __tablename__ = "feedback"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    conversation_id: Mapped[str] = mapped_column(String(36))  # no key: the snapshot stays when it goes
    message_id: Mapped[str] = mapped_column(String(36))
    rating: Mapped[str] = mapped_column(String(8))  # up | down
    reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    preferred: Mapped[bool] = mapped_column(Boolean)  # chosen over the side-by-side answers beside it
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (
        UniqueConstraint("user_id", "message_id"),
        Index("ix_feedback_created_at_id", "created_at", "id"),
    )
