"""Request bodies of the Ollama API, as Ollama documents them (docs/api.md).

Unknown fields are ignored, as Ollama ignores them; wrong types are a 400.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

__all__ = [
    "ChatRequest",
    "CopyRequest",
    "CreateRequest",
    "DeleteRequest",
    "EmbedRequest",
    "EmbeddingsRequest",
    "GenerateRequest",
    "Message",
    "ShowRequest",
    "Tool",
    "ToolCall",
]

KeepAlive = str | float | int | None
Format = Literal["json", ""] | dict[str, Any] | None


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _ModelBody(_Body):
    model: str = ""
    name: str = ""  # older clients send "name"

    @property
    def model_name(self) -> str:
        return self.model or self.name


class ToolCallFunction(_Body):
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    index: int | None = None


class ToolCall(_Body):
    id: str | None = None
    function: ToolCallFunction


class Message(_Body):
    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = ""
    images: list[str] | None = None
    tool_calls: list[ToolCall] | None = None
    tool_name: str | None = None
    thinking: str | None = None


class ToolFunction(_Body):
    name: str
    description: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)


class Tool(_Body):
    type: str = "function"
    function: ToolFunction


class GenerateRequest(_ModelBody):
    prompt: str | None = ""
    suffix: str | None = None
    system: str | None = None
    template: str | None = None
    context: list[StrictInt] | None = None  # token ids: true or 1.5 are not tokens
    stream: bool | None = True
    raw: bool | None = False
    format: Format = None
    images: list[str] | None = None
    options: dict[str, Any] | None = None
    keep_alive: KeepAlive = None
    think: bool | str | None = None


class ChatRequest(_ModelBody):
    messages: list[Message] | None = None
    tools: list[Tool] | None = None
    stream: bool | None = True
    format: Format = None
    options: dict[str, Any] | None = None
    keep_alive: KeepAlive = None
    think: bool | str | None = None


class EmbedRequest(_ModelBody):
    input: str | list[str] | None = None
    truncate: bool | None = True
    options: dict[str, Any] | None = None
    keep_alive: KeepAlive = None
    dimensions: int | None = Field(default=None, ge=1)


class EmbeddingsRequest(_ModelBody):
    prompt: str | None = ""
    options: dict[str, Any] | None = None
    keep_alive: KeepAlive = None


class ShowRequest(_ModelBody):
    verbose: bool | None = False


class CopyRequest(_Body):
    source: str
    destination: str


class DeleteRequest(_ModelBody):
    pass


class CreateRequest(_ModelBody):
    from_: str | None = Field(default=None, alias="from")
    files: dict[str, str] | None = None
    adapters: dict[str, str] | None = None
    template: str | None = None
    license: str | list[str] | None = None
    system: str | None = None
    parameters: dict[str, Any] | None = None
    messages: list[Message] | None = None
    modelfile: str | None = None  # the older API: a whole Modelfile as text
    quantize: str | None = None
    stream: bool | None = True
