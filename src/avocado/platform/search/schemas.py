"""What search takes and gives."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

__all__ = ["Filters", "SearchHit"]


@dataclass(frozen=True, slots=True)
class Filters:
    folder_id: str | None = None
    tag: str | None = None
    model: str | None = None
    archived: bool | None = None
    pinned: bool | None = None
    since: datetime | None = None
    until: datetime | None = None


class SearchHit(BaseModel):
    kind: Literal["title", "message", "note"]
    conversation_id: str | None
    message_id: str | None = Field(description="the message found (null for a title or a note)")
    note_id: str | None = None
    title: str
    snippet: str = Field(description="the text around the words found, HTML-escaped, words in <mark>")
    score: float = Field(description="higher is better")
    created_at: datetime | None = None
