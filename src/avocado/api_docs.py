"""Pieces of the OpenAPI documents that the node and the gateway share: error bodies, answers, model names.

Each route's ``responses`` lists what it really answers, besides its success, in the error shapes of
:mod:`avocado.api_errors` (Ollama's, OpenAI's under ``/v1``, the registry's under ``/v2``). FastAPI's
own ``422`` is taken out of every document: bad input is a ``400`` here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

__all__ = [
    "CONTENT_REFUSALS",
    "MODEL_NAME_PATTERN",
    "OLLAMA_ERROR",
    "OPENAI_ERROR",
    "PULL_SOURCE",
    "REGISTRY_ERROR",
    "SSE_EVENT",
    "ErrorKind",
    "Responses",
    "content_refusal",
    "errors",
    "ok",
    "without_422",
]

# What a route may refuse in a request its document allows: a 400 about content that no JSON Schema can
# judge, named one by one (by its message). Any other 400 to a request the document allows means the
# document or the route is wrong (the fuzz, bench/fuzz.py, and tests/test_openapi.py hold them to it).
CONTENT_REFUSALS = tuple(
    re.compile(pattern)
    for pattern in (
        # pulls and pushes: a registry the node may not reach (pull_only_networks, pull_allow_networks,
        # link-local and metadata addresses), cannot reach, or whose name does not resolve
        r"outside pull_only_networks|only in the networks listed in pull_allow_networks",
        r"transfers never reach",
        r"cannot resolve|cannot reach",
        # uploads: random bytes never have the digest they are sent under
        r"does not match digest",
        r"content does not match",
        # a manifest or a create naming blobs that were never uploaded, or files that are not one GGUF
        r"blob unknown to registry",
        r"was not uploaded",
        r"give exactly one GGUF file",
        r"^FROM .* is a path",
        # text in a language of its own: a Go template, a Modelfile, a JSON Schema for llama.cpp's
        # grammar converter, a tool call's arguments as JSON text, base64 image data
        r"^(chat )?template error: ",
        r"^empty prompt$",  # a template that renders nothing for a model that adds no BOS token
        r"^line \d+: |^no FROM line",
        r"invalid JSON schema in format|invalid format",
        r"has arguments that are not a JSON object",
        r"invalid image input",
        # what the model can do: its capabilities, its vocabulary, its context, the node's memory
        r"does not support (insert|tools|thinking|image input)",
        r"^context holds token \d+, which is not a token of this model",
        r"input length exceeds the context length",
        r"^num_ctx \d+ is too large",
        # the gateway's keys: an expiry is judged against the clock and a range
        r"expires_at must be in the future",
        r"expires_in must be longer than zero|expires_in is too long",
    )
)

Responses = dict[int | str, dict[str, Any]]
ErrorKind = Literal["ollama", "openai", "registry"]

# A model name as Ollama spells it, ``[host/][namespace/]model[:tag]`` (:class:`avocado.names.ModelName`,
# whose checks this repeats): what the routes that read a name accept, in JSON Schema's words.
_PART = "[A-Za-z0-9][A-Za-z0-9_.-]{0,79}"
_HOST = "[A-Za-z0-9][A-Za-z0-9_.-]{0,349}(:[0-9]{1,5})?"
_TAG = "[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}"
_NAME = f"(({_HOST}/)?{_PART}/)?{_PART}(:{_TAG})?"
MODEL_NAME_PATTERN = f"^(https?://)?{_NAME}$"
# An http(s) URL: a host name (from a letter on) or an IPv4 address, a port that is a number, printable
# characters after. (IPv6 literals work too; a pattern cannot tell the valid ones.)
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"  # no leading zero: 07 is no octet to httpx
_URL = rf"^https?://([A-Za-z][A-Za-z0-9.-]*|({_OCTET}\.){{3}}{_OCTET})(:[0-9]{{1,5}})?([/?#][!-~]*)?$"
# What a pull names: a model (a registry's), or a GGUF file by its http(s) URL.
PULL_SOURCE: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "pattern": f"^{_NAME}$"},
        {"type": "string", "pattern": _URL},
    ]
}

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


def content_refusal(message: str) -> str | None:
    """The pattern of :data:`CONTENT_REFUSALS` that ``message`` (a 400's) matches, if any."""
    return next((pattern.pattern for pattern in CONTENT_REFUSALS if pattern.search(message)), None)


def errors(statuses: Iterable[int], why: Mapping[int, str], kind: ErrorKind = "ollama") -> Responses:
    """Error answers: each status with its reason from ``why`` and the body ``kind`` describes."""
    schema = _SCHEMAS[kind]
    return {
        status: {"description": why[status], "content": {"application/json": {"schema": schema}}}
        for status in statuses
    }


# One server-sent event (OpenAPI 3.1 describes an event stream event by event): its data is the JSON
# of a chunk, or "[DONE]" at the end.
SSE_EVENT: dict[str, Any] = {
    "type": "object",
    "properties": {"data": {"type": "string"}, "event": {"type": "string"}, "id": {"type": "string"}},
    "required": ["data"],
}


def _schema_of(kind: str, schema: dict[str, Any] | None) -> dict[str, Any]:
    if kind.endswith("json"):
        return schema or {"type": "object"}
    return SSE_EVENT if kind == "text/event-stream" else {"type": "string"}


def ok(description: str, *kinds: str, status: int = 200, schema: dict[str, Any] | None = None) -> Responses:
    """A success answered in the media types ``kinds`` (JSON as ``schema``, any object by default;
    anything else as a string); none: an empty body."""
    content = {kind: {"schema": _schema_of(kind, schema)} for kind in kinds}
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
