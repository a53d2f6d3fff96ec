"""The admin API's JSON: audit events out, settings in and out."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["AuditEventPublic", "SettingsPublic", "SettingsUpdate"]


class AuditEventPublic(BaseModel):
    id: int
    at: datetime
    action: str
    actor_id: str | None
    subject_id: str | None
    address: str | None
    detail: dict[str, Any] | None


class SettingsPublic(BaseModel):
    signup_policy: Literal["approval", "open", "closed"]
    retention_archived_days: int | None = Field(
        description="archived conversations are deleted this many days after their last change (null: kept)"
    )
    max_conversations_per_user: int | None = Field(
        description="each user's oldest unpinned conversations past this many are deleted (null: no cap)"
    )


class SettingsUpdate(BaseModel):
    """Only the settings given change; ``null`` turns a retention rule off."""

    model_config = ConfigDict(extra="forbid")

    signup_policy: Literal["approval", "open", "closed"] | None = None
    retention_archived_days: int | None = Field(default=None, ge=1, le=36500)
    max_conversations_per_user: int | None = Field(default=None, ge=1, le=1_000_000)
