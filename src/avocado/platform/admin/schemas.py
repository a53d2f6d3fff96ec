"""The admin API's JSON: audit events out, settings in and out."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

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


class SettingsUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    signup_policy: Literal["approval", "open", "closed"] | None = None
