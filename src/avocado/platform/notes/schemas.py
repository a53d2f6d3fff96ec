"""What the notes API takes and gives."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

__all__ = ["MAX_NOTE", "NoteCreate", "NotePublic", "NoteUpdate"]

MAX_NOTE = 100_000
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
Content = Annotated[str, StringConstraints(max_length=MAX_NOTE)]


class NoteCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title
    content: Content = ""
    conversation_id: Annotated[str, StringConstraints(max_length=36)] | None = Field(
        default=None, description="attach it to this conversation of mine"
    )


class NoteUpdate(BaseModel):
    """Only the fields given change; ``conversation_id: null`` makes the note standalone."""

    model_config = ConfigDict(extra="forbid")

    title: Title | None = None
    content: Content | None = None
    conversation_id: Annotated[str, StringConstraints(max_length=36)] | None = None


class NotePublic(BaseModel):
    id: str
    title: str
    content: str
    conversation_id: str | None
    created_at: datetime
    updated_at: datetime
