"""Pieces of the OpenAPI documents that the node and the gateway share: error bodies, answers, model names.

Each route's ``responses`` lists what it really answers, besides its success, in the error shapes of
:mod:`avocado.api_errors` (Ollama's, OpenAI's under ``/v1``, the registry's under ``/v2``). FastAPI's
own ``422`` is taken out of every document: bad input is a ``400`` here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

__all__ = [
    "MODEL_NAME_PATTERN",
    "OLLAMA_ERROR",
    "OPENAI_ERROR",
    "REGISTRY_ERROR",
    "ErrorKind",
    "Responses",
    "errors",
    "ok",
    "without_422",
]

Responses = dict[int | str, dict[str, Any]]
ErrorKind = Literal["ollama", "openai", "registry"]

# A model name as Ollama spells it, ``[host/][namespace/]model[:tag]`` (:class:`avocado.names.ModelName`,
# whose checks this repeats): what the routes that read a name accept, in JSON Schema's words.
_PART = "[A-Za-z0-9][A-Za-z0-9_.-]{0,79}"
_HOST = "[A-Za-z0-9][A-Za-z0-9_.-]{0,349}(:[0-9]{1,5})?"
_TAG = "[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}"
MODEL_NAME_PATTERN = f"^(https?://)?(({_HOST}/)?{_PART}/)?{_PART}(:{_TAG})?$"

OLLAMA_ERROR: dict[str, Any] = {
    "type": "object",
    "properties": {"error": {"type": "string"}},
    "required": ["error"],
}
OPENAI_ERROR: dict[str, Any] = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
            "required": ["message", "type"],
        }
    },
    "required": ["error"],
}
REGISTRY_ERROR: dict[str, Any] = {
    "type": "object",
    "properties": {
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                "required": ["code", "message"],
            },
        }
    },
    "required": ["errors"],
}
_SCHEMAS: dict[ErrorKind, dict[str, Any]] = {
    "ollama": OLLAMA_ERROR,
    "openai": OPENAI_ERROR,
    "registry": REGISTRY_ERROR,
}


def errors(statuses: Iterable[int], why: Mapping[int, str], kind: ErrorKind = "ollama") -> Responses:
    """Error answers: each status with its reason from ``why`` and the body ``kind`` describes."""
    schema = _SCHEMAS[kind]
    return {
        status: {"description": why[status], "content": {"application/json": {"schema": schema}}}
        for status in statuses
    }


def ok(description: str, *kinds: str, status: int = 200, schema: dict[str, Any] | None = None) -> Responses:
    """A success answered in the media types ``kinds`` (JSON as ``schema``, any object by default;
    anything else as a string); none: an empty body."""
    content = {
        kind: {"schema": (schema or {"type": "object"}) if kind.endswith("json") else {"type": "string"}}
        for kind in kinds
    }
    answer: dict[str, Any] = {"description": description}
    if content:
        answer["content"] = content
    return {status: answer}


def without_422(document: dict[str, Any]) -> dict[str, Any]:
    """FastAPI lists 422 on every route with parameters; these services answer bad input with 400."""
    for item in document.get("paths", {}).values():
        for operation in item.values():
            operation.get("responses", {}).pop("422", None)
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    return document
