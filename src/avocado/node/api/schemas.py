"""Request bodies of the Ollama API, as Ollama documents them (docs/api.md).

Unknown fields are ignored, as Ollama ignores them; wrong types are a 400, as Go's JSON decoding makes
them on Ollama: ``"5"`` or ``true`` is not a number, ``1`` is not a boolean (pydantic's strict mode).
Whole numbers written as floats (``5.0``) are integers, as JSON Schema counts them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from avocado.api_docs import MODEL_NAME_PATTERN
from avocado.node.options import options_schema

__all__ = [
    "WHOLE",
    "ChatRequest",
    "CopyRequest",
    "CreateRequest",
    "DeleteRequest",
    "EmbedRequest",
    "EmbeddingsRequest",
    "GenerateRequest",
    "Integer",
    "Message",
    "ModelNameText",
    "ShowRequest",
    "Tool",
    "ToolCall",
]


def _integral(value: Any) -> Any:
    """A whole number written as a float (``5.0``) is that integer; anything else is left to be judged."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


WHOLE = BeforeValidator(_integral)  # for a constrained field: Annotated[int | None, WHOLE] = Field(ge=...)
Integer = Annotated[int, WHOLE]
# A duration as Go writes it ("5m", "1h30m", "-1s"), or seconds as a number (negative: forever).
_NUMBER = r"(\d+(\.\d*)?|\.\d+)"
DURATION_PATTERN = rf"^\s*([+-]?(({_NUMBER}(ns|us|µs|ms|s|m|h|d|w))+|{_NUMBER}([eE][+-]?\d+)?))?\s*$"
KeepAlive = Annotated[
    str | float | int | None,
    WithJsonSchema(
        {"anyOf": [{"type": "string", "pattern": DURATION_PATTERN}, {"type": "number"}, {"type": "null"}]}
    ),
]
Format = Literal["json", ""] | dict[str, Any] | None
Options = Annotated[dict[str, Any] | None, WithJsonSchema({"anyOf": [options_schema(), {"type": "null"}]})]
# What the OpenAPI document says of a model name; the routes check it themselves (an unknown name is
# a 404 wherever a model is looked up, as on Ollama).
ModelNameText = Annotated[str, WithJsonSchema({"type": "string", "pattern": MODEL_NAME_PATTERN})]


def model_required(schema: dict[str, Any]) -> None:
    """``model`` is required (``name`` stands in for it from older clients, undocumented)."""
    schema["required"] = sorted({*schema.get("required", []), "model"})
    schema["properties"].pop("name", None)
    schema["properties"]["model"].pop("default", None)


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class _ModelBody(_Body):
    model_config = ConfigDict(extra="ignore", json_schema_extra=model_required)

    model: ModelNameText = ""
    name: str = ""  # older clients send "name"

    @property
    def model_name(self) -> str:
        return self.model or self.name


class ToolCallFunction(_Body):
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    index: Integer | None = None


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
    context: Annotated[  # token ids: true, 1.5 or -1 are not tokens
        list[Integer] | None,
        WithJsonSchema(
            {"anyOf": [{"type": "array", "items": {"type": "integer", "minimum": 0}}, {"type": "null"}]}
        ),
    ] = None
    stream: bool | None = True
    raw: bool | None = False
    format: Format = None
    images: list[str] | None = None
    options: Options = None
    keep_alive: KeepAlive = None
    think: bool | str | None = None


class ChatRequest(_ModelBody):
    messages: list[Message] | None = None
    tools: list[Tool] | None = None
    stream: bool | None = True
    format: Format = None
    options: Options = None
    keep_alive: KeepAlive = None
    think: bool | str | None = None


class EmbedRequest(_ModelBody):
    input: Annotated[  # one text ("" embeds nothing) or a list of texts, none empty
        str | list[str] | None,
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "string"},
                    {"type": "array", "items": {"type": "string", "minLength": 1}},
                    {"type": "null"},
                ]
            }
        ),
    ] = None
    truncate: bool | None = True
    options: Options = None
    keep_alive: KeepAlive = None
    dimensions: Annotated[int | None, WHOLE] = Field(default=None, ge=1)


class EmbeddingsRequest(_ModelBody):
    prompt: str | None = ""
    options: Options = None
    keep_alive: KeepAlive = None


class ShowRequest(_ModelBody):
    verbose: bool | None = False


class CopyRequest(_Body):
    source: ModelNameText
    destination: ModelNameText


class DeleteRequest(_ModelBody):
    pass


# What this node cannot do yet, said in the document: a create with either is refused.
_NO_ADAPTERS = {
    "type": ["object", "null"],
    "maxProperties": 0,
    "description": "LoRA adapters: not supported yet",
}
_NO_QUANTIZE = {
    "type": ["string", "null"],
    "maxLength": 0,
    "description": "Not supported yet: import an already quantized GGUF",
}
Files = Annotated[
    dict[str, str] | None,
    WithJsonSchema(
        {
            "type": ["object", "null"],
            "additionalProperties": {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"},
            "description": "File name -> digest of a blob uploaded with POST /api/blobs/{digest}",
        }
    ),
]


def _weights_given(schema: dict[str, Any]) -> None:
    """A create names its weights: ``from`` (a model), ``files`` (uploaded blobs) or a ``modelfile``."""
    model_required(schema)
    schema["anyOf"] = [
        {"required": ["from"], "properties": {"from": {"type": "string", "minLength": 1}}},
        {"required": ["files"], "properties": {"files": {"type": "object", "minProperties": 1}}},
        {"required": ["modelfile"], "properties": {"modelfile": {"type": "string", "minLength": 1}}},
    ]


class CreateRequest(_ModelBody):
    model_config = ConfigDict(extra="ignore", json_schema_extra=_weights_given)

    from_: Annotated[  # "" is not given, as null
        str | None,
        WithJsonSchema(
            {"anyOf": [{"type": "string", "pattern": MODEL_NAME_PATTERN}, {"const": ""}, {"type": "null"}]}
        ),
    ] = Field(default=None, alias="from")
    files: Files = None
    adapters: Annotated[dict[str, str] | None, WithJsonSchema(_NO_ADAPTERS)] = None
    template: str | None = None
    license: str | list[str] | None = None
    system: str | None = None
    parameters: Options = None
    messages: list[Message] | None = None
    modelfile: str | None = None  # the older API: a whole Modelfile as text
    quantize: Annotated[str | None, WithJsonSchema(_NO_QUANTIZE)] = None
    stream: bool | None = True
