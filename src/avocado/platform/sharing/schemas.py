"""What the sharing API gives."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

__all__ = ["ShareCreated", "SharePublic", "SharedConversation", "SharedMessage"]


class SharePublic(BaseModel):
    id: str
    conversation_id: str
    title: str
    message_count: int
    created_at: datetime
    revoked_at: datetime | None


class ShareCreated(SharePublic):
    token: str = Field(description="shown once: the link is /s/<token>")
    url: str


class SharedMessage(BaseModel):
    role: str
    content: str
    model: str | None
    created_at: datetime


class SharedConversation(BaseModel):
    title: str
    shared_by: str
    created_at: datetime
    messages: list[SharedMessage]
