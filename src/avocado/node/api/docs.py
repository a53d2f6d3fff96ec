"""The node's OpenAPI document, told as the routes answer: every status a route gives, in its error shape.

Each route names its own answers with the sets below (``responses=`` on its decorator). What every
route shares is added to the whole document by :func:`install_openapi`: ``401`` (the node has an API
key and the request none, or a wrong one), ``403`` (a ``Host`` the node does not answer to), ``413``
where a body is read, and the health routes, which a middleware answers before any route.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from avocado.api_docs import MODEL_NAME_PATTERN, ErrorKind, Responses, errors, ok, without_422

__all__ = [
    "BLOB_DIGEST",
    "BLOB_FOUND",
    "BLOB_STORED",
    "BYTES",
    "COPIED",
    "EMBEDDED",
    "GENERATED",
    "LISTED",
    "MANAGED",
    "MANIFEST_BODY",
    "OPENAI_EMBEDDED",
    "OPENAI_GENERATED",
    "OPENAI_MODEL",
    "REGISTRY",
    "SHOWN",
    "STREAMED_PROGRESS",
    "install_openapi",
    "registry",
]

WHY = {
    400: "The request cannot be served as asked: an invalid name, option, template or body",
    401: "The node requires an API key (Authorization: Bearer <key>) and got none, or a wrong one",
    403: "The Host header is not one the node answers to (DNS rebinding protection)",
    404: "No such model (or blob, or upload)",
    413: "The body is larger than max_body (blobs: max_upload)",
    429: "Too many uploads in progress",
    500: "The model could not be loaded or run, or the disk failed",
    503: "The model's queue is full (max_queue); try again later",
}
# A model name, a blob's digest and an upload session's id, as the routes read them.
BLOB_DIGEST = "^sha256:[0-9a-f]{64}$"
_PART = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$"
_TAG = "^[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}$"
_UPLOAD = "^[0-9a-f]{32}$"

LISTED: Responses = ok("The answer", "application/json")
GENERATED: Responses = {
    **ok("One JSON object, or NDJSON lines while streaming", "application/json", "application/x-ndjson"),
    **errors((400, 404, 500, 503), WHY),
}
EMBEDDED: Responses = {**ok("The embeddings", "application/json"), **errors((400, 404, 500, 503), WHY)}
SHOWN: Responses = {**ok("The model's details", "application/json"), **errors((400, 404), WHY)}
STREAMED_PROGRESS: Responses = {
    **ok("Progress as NDJSON lines, or the last as one object", "application/json", "application/x-ndjson"),
    **errors((400, 404), WHY),
}
COPIED: Responses = {**ok("Done (no body)"), **errors((400, 404), WHY)}
MANAGED: Responses = COPIED
OPENAI_GENERATED: Responses = {
    **ok("One JSON object, or server-sent events while streaming", "application/json", "text/event-stream"),
    **errors((400, 404, 500, 503), WHY, "openai"),
}
OPENAI_EMBEDDED: Responses = {
    **ok("The embeddings", "application/json"),
    **errors((400, 404, 500, 503), WHY, "openai"),
}
OPENAI_MODEL: Responses = {**ok("The model", "application/json"), **errors((404,), WHY, "openai")}
BLOB_FOUND: Responses = {**ok("The node has the blob"), **ok("The node has no such blob", status=404)}
BLOB_STORED: Responses = {**ok("Stored", status=201), **errors((400,), WHY)}
BYTES = {
    "requestBody": {
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        "required": True,
    }
}
_LAYER = {
    "type": "object",
    "properties": {
        "mediaType": {"type": "string"},
        "digest": {"type": "string", "pattern": BLOB_DIGEST},
        "size": {"type": "integer", "minimum": 0},
    },
    "required": ["mediaType", "digest", "size"],
}
_MANIFEST_SCHEMA = {
    "type": "object",
    "properties": {
        "schemaVersion": {"type": "integer"},
        "mediaType": {"type": "string"},
        "config": _LAYER,
        "layers": {"type": ["array", "null"], "items": _LAYER},
    },
    "required": ["config"],
}


def registry(success: Responses, *statuses: int) -> Responses:
    """A ``/v2`` route's answers: ``success`` and ``statuses`` in the registry's error shape."""
    return {**success, **errors(statuses, WHY, "registry")}


_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_BODY = {
    "requestBody": {"content": {_MANIFEST: {"schema": _MANIFEST_SCHEMA}}, "required": True},
}
_BLOB = "application/octet-stream"
REGISTRY = {
    "version": ok("The registry API is here", "application/json"),
    "manifest": registry(ok("The manifest", _MANIFEST), 404),
    "blob": registry(
        {
            **ok("The blob", _BLOB),
            **ok("Part of the blob (Range)", _BLOB, status=206),
            **ok("The Range asked is outside the blob", "text/plain", status=416),
        },
        400,
        404,
    ),
    "start": registry(ok("An upload session (Location, Docker-Upload-UUID)", status=202), 400, 429),
    "chunk": registry(ok("Received (Range: what the session holds)", status=202), 404, 413, 500),
    "finish": registry(ok("Stored (Docker-Content-Digest)", status=201), 400, 404, 413, 500),
    "cancel": registry(ok("The session and its data are gone", status=204), 404),
    "put_manifest": registry(ok("Stored (Docker-Content-Digest)", status=201), 400, 500),
}
PATH_PATTERNS: dict[str | tuple[str, str], str] = {
    ("/v1/models/{model}", "model"): MODEL_NAME_PATTERN,
    "digest": BLOB_DIGEST,
    "namespace": _PART,
    "model": _PART,
    "tag": _TAG,
    "key": _UPLOAD,
}

_HEALTH_OK = {"type": "object", "properties": {"status": {"type": "string"}}, "required": ["status"]}
_HEALTH_DOWN = {
    "type": "object",
    "properties": {"status": {"type": "string"}, "reason": {"type": "string"}},
    "required": ["status", "reason"],
}


def _health(summary: str, down: bool) -> dict[str, Any]:
    responses = ok("Up" if not down else "Ready", "application/json", schema=_HEALTH_OK)
    if down:
        responses |= ok("Not ready, and why", "application/json", status=503, schema=_HEALTH_DOWN)
    operation = {"summary": summary, "tags": ["health"], "responses": responses}
    return {"get": operation, "head": {**operation, "operationId": f"head_{summary.lower()}"}}


def _kind(path: str) -> ErrorKind:
    return "registry" if path.startswith("/v2/") else "openai" if path.startswith("/v1/") else "ollama"


def _pattern(path: str, parameter: dict[str, Any]) -> None:
    """A path parameter's real pattern; a finished upload's ``?digest=``, which it cannot do without."""
    name = parameter["name"]
    pattern = PATH_PATTERNS.get((path, name)) or PATH_PATTERNS.get(name)
    if parameter["in"] == "path" and pattern:
        parameter["schema"]["pattern"] = pattern
    elif parameter["in"] == "query" and name == "digest":
        parameter["schema"] = {"type": "string", "pattern": BLOB_DIGEST}
        parameter["required"] = True


def _common(document: dict[str, Any]) -> dict[str, Any]:
    """Add what every route answers, and the real patterns of path parameters."""
    for path, item in document["paths"].items():
        for operation in item.values():
            statuses = [403] if path == "/" else [401, 403]  # GET / needs no key, as on Ollama
            if "requestBody" in operation:
                statuses.append(413)
            responses = operation.setdefault("responses", {})
            for status, answer in errors(statuses, WHY, _kind(path)).items():
                responses.setdefault(str(status), answer)
            for parameter in operation.get("parameters", []):
                _pattern(path, parameter)
    document["paths"]["/health/live"] = _health("Live", down=False)
    document["paths"]["/health/ready"] = _health("Ready", down=True)
    return document


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` describe what the node's routes answer (see the module's words)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, routes=app.routes)
            app.openapi_schema = _common(without_422(document))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
