"""What the feedback API takes and gives."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

__all__ = ["FeedbackExport", "FeedbackGiven", "FeedbackPublic"]

Rating = Literal["up", "down"]


class FeedbackGiven(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rating: Rating
    reason: Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)] | None = None
    comment: Annotated[str, StringConstraints(max_length=4000)] | None = None
    preferred: bool = Field(default=False, description="this answer was picked over the ones beside it")


class FeedbackPublic(BaseModel):
    id: str
    conversation_id: str
    message_id: str
    rating: Rating
    reason: str | None
    comment: str | None
    preferred: bool
    created_at: datetime
    updated_at: datetime


class FeedbackExport(FeedbackPublic):
    """For the admin: whose, and the exchange as it was (model, prompt, answer, the others beside it)."""

    user_id: str
    snapshot: dict[str, Any]
