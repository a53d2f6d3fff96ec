"""Request bodies of the OpenAI-compatible API (the subset Ollama documents, plus what clients send)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from avocado.node.api.schemas import WHOLE, Integer, ModelNameText

__all__ = [
    "ChatCompletionRequest",
    "CompletionRequest",
    "EmbeddingRequest",
    "OpenAIMessage",
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)  # wrong types are a 400, as on OpenAI


class FunctionCall(_Body):
    name: str
    arguments: str = "{}"


class ToolCallIn(_Body):
    id: str | None = None
    type: str = "function"
    function: FunctionCall


# An image is a base64 data URL (the node fetches nothing); as an object, {"url": ...}.
_DATA_URL = {"type": "string", "pattern": "^data:[^,]*,"}


def _one_kind_of_part(schema: dict[str, Any]) -> None:
    """A text part, or an image part that carries its image."""
    schema.pop("properties", None)
    schema.pop("required", None)
    schema["anyOf"] = [
        {
            "type": "object",
            "properties": {"type": {"const": "text"}, "text": {"type": ["string", "null"]}},
            "required": ["type"],
        },
        {
            "type": "object",
            "properties": {
                "type": {"const": "image_url"},
                "image_url": {
                    "anyOf": [
                        _DATA_URL,
                        {"type": "object", "properties": {"url": _DATA_URL}, "required": ["url"]},
                    ]
                },
            },
            "required": ["type", "image_url"],
        },
    ]


class ContentPart(_Body):
    model_config = ConfigDict(json_schema_extra=_one_kind_of_part)

    type: str
    text: str | None = None
    image_url: dict[str, Any] | str | None = None


class OpenAIMessage(_Body):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = None


class StreamOptions(_Body):
    include_usage: bool = False


class ResponseFormat(_Body):
    type: Literal["text", "json_object", "json_schema"] = "text"
    json_schema: dict[str, Any] | None = None


class FunctionDef(_Body):
    name: str
    description: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)


class ToolDef(_Body):
    type: Literal["function"] = "function"
    function: FunctionDef


class _Sampling(_Body):
    model: ModelNameText
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    max_tokens: Annotated[int | None, WHOLE] = Field(default=None, ge=0)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    seed: Integer | None = None
    stop: str | list[str] | None = None
    # One choice per request: n > 1 is refused (said in the document, which OpenAI's allows).
    n: Annotated[
        Integer | None,
        WithJsonSchema({"anyOf": [{"type": "integer", "minimum": 1, "maximum": 1}, {"type": "null"}]}),
    ] = None
    user: str | None = None


class ChatCompletionRequest(_Sampling):
    messages: Annotated[list[OpenAIMessage], Field(json_schema_extra={"minItems": 1})]
    max_completion_tokens: Annotated[int | None, WHOLE] = Field(default=None, ge=0)
    response_format: ResponseFormat | None = None
    tools: list[ToolDef] | None = None
    tool_choice: str | dict[str, Any] | None = None


class CompletionRequest(_Sampling):
    prompt: Annotated[  # one prompt; a list of several (a batch) is refused
        str | list[str],
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "string"},
                    {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 1},
                ]
            }
        ),
    ]
    suffix: str | None = None
    echo: bool | None = False


class EmbeddingRequest(_Body):
    model: ModelNameText
    input: Annotated[  # texts, none empty; token arrays (OpenAI's too) are refused, as on Ollama
        str | list[str] | list[int] | list[list[int]],
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "string", "minLength": 1},
                    {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1},
                ]
            }
        ),
    ]
    encoding_format: Literal["float", "base64"] | None = "float"
    dimensions: Annotated[int | None, WHOLE] = Field(default=None, ge=1)
    user: str | None = None
