"""What the conversations API takes and gives. Inputs forbid unknown fields and check sizes at the
edge; a conversation's generation options are Ollama's names for them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from avocado.platform.feedback.schemas import FeedbackPublic

__all__ = [
    "MAX_CONTENT",
    "ArchiveOlder",
    "ConversationCreate",
    "ConversationDetail",
    "ConversationPublic",
    "ConversationUpdate",
    "FolderCreate",
    "FolderPublic",
    "FolderUpdate",
    "ForkRequest",
    "LeafRequest",
    "MessagePublic",
    "MessageSend",
    "Options",
    "Regenerate",
    "Status",
    "TemporaryChat",
    "Turn",
]

MAX_CONTENT = 200_000  # characters in one message
Status = Literal["done", "generating", "stopped", "failed", "interrupted"]
ModelName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
System = Annotated[str, StringConstraints(max_length=MAX_CONTENT)]
Id = Annotated[str, StringConstraints(min_length=1, max_length=36)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Options(_Input):
    """Generation options (Ollama's names); unset ones are the model's defaults."""

    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0, le=1000)
    min_p: float | None = Field(default=None, ge=0, le=1)
    repeat_penalty: float | None = Field(default=None, ge=0, le=10)
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    num_ctx: int | None = Field(default=None, ge=256, le=1_048_576)
    num_predict: int | None = Field(default=None, ge=1, le=131_072)
    stop: list[Annotated[str, StringConstraints(min_length=1, max_length=100)]] | None = Field(
        default=None, max_length=8
    )


class ConversationCreate(_Input):
    model: ModelName
    title: Title | None = None
    system: System | None = None
    options: Options = Field(default_factory=lambda: Options())
    folder_id: Id | None = None
    summarise: bool = Field(default=False, description="summarise turns that no longer fit the context")


class ConversationUpdate(_Input):
    """Only the fields given change; ``null`` clears ``system`` and ``folder_id``."""

    title: Title | None = None
    model: ModelName | None = None
    system: System | None = None
    options: Options | None = None
    folder_id: Id | None = None
    summarise: bool | None = None
    pinned: bool | None = None
    archived: bool | None = None
    tags: list[Tag] | None = Field(default=None, max_length=20)


class ConversationPublic(BaseModel):
    id: str
    title: str
    model: str
    system: str | None
    options: dict[str, Any]
    summarise: bool
    summary: str | None = Field(description="what the model made of the turns left out of its context")
    folder_id: str | None
    pinned: bool
    archived: bool
    tags: list[str]
    message_count: int
    leaf_id: str | None
    created_at: datetime
    updated_at: datetime


class MessagePublic(BaseModel):
    id: str
    parent_id: str | None
    role: str
    content: str
    model: str | None
    status: Status
    error: str | None
    done_reason: str | None
    usage: dict[str, Any] | None
    created_at: datetime
    siblings: list[str] = Field(description="ids of this message and its siblings, oldest first")
    in_context: bool = Field(default=True, description="false: left out of what the model was last sent")
    feedback: FeedbackPublic | None = Field(
        default=None, description="the caller's own feedback on this answer (null: none given)"
    )
    beside: list[MessagePublic] = Field(
        default_factory=list,
        description="the other answers written with this one by one send to several models, shown side by"
        " side until one of them is picked (preferred feedback); empty otherwise",
    )


class ConversationDetail(ConversationPublic):
    messages: list[MessagePublic] = Field(description="the active path, oldest first")
    more_before: bool = Field(description="older messages of the path are not in this answer")


class MessageSend(_Input):
    content: Annotated[str, StringConstraints(min_length=1, max_length=MAX_CONTENT)]
    models: list[ModelName] | None = Field(default=None, min_length=1, max_length=4)
    parent_id: Id | None = Field(
        default=None, description="reply to this message instead of the conversation's leaf"
    )
    edit_of: Id | None = Field(
        default=None, description="a message of mine this one replaces: a sibling branch beside it"
    )


class Turn(_Input):
    role: Literal["user", "assistant"]
    content: Annotated[str, StringConstraints(max_length=MAX_CONTENT)]


class TemporaryChat(_Input):
    """A chat that is never stored: the client holds its turns and sends them all each time."""

    model: ModelName
    messages: list[Turn] = Field(min_length=1, max_length=500)
    system: System | None = None
    options: Options = Field(default_factory=lambda: Options())


class Regenerate(_Input):
    model: ModelName | None = None


class LeafRequest(_Input):
    message_id: Id


class ForkRequest(_Input):
    message_id: Id


class ArchiveOlder(_Input):
    older_than_days: int = Field(ge=0, le=36500)


class FolderCreate(_Input):
    name: Name
    parent_id: Id | None = None


class FolderUpdate(_Input):
    name: Name | None = None
    parent_id: Id | None = None


class FolderPublic(BaseModel):
    id: str
    name: str
    parent_id: str | None
    created_at: datetime
