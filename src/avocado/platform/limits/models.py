"""Per-user overrides of the role limits: one row per user who has one.

``limits`` holds only the fields set for the user (a JSON object), so "not set: the role's limit"
and "set to no limit" (``null``) stay apart. Role defaults live in the settings store
(``role_limits``), where every change is audited.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from avocado.db.base import Base, UtcDateTime

__all__ = ["UserLimit"]


class UserLimit(Base):
    __tablename__ = "user_limits"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    limits: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
