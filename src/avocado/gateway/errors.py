"""Errors the gateway answers itself, in the shape the client expects: Ollama's, or OpenAI's under ``/v1``.

Ollama: ``{"error": "message"}``. OpenAI: ``{"error": {"message", "type", "param", "code"}}``. The
shapes are the node's (``avocado.node.api.errors``), written out here so that the gateway does not
import the embedded engine.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import Send

__all__ = [
    "error_body",
    "error_bytes",
    "error_response",
    "install_error_handlers",
    "is_openai_path",
    "retry_after_value",
    "send_error",
    "stream_error_line",
]

log = logging.getLogger(__name__)

_OPENAI_TYPES: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "model_not_allowed"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("rate_limit_error", None),
    502: ("server_error", "bad_gateway"),
    503: ("server_error", "overloaded"),
}


def is_openai_path(path: str) -> bool:
    return path.startswith("/v1/")


def error_body(path: str, status: int, message: str) -> dict[str, Any]:
    if is_openai_path(path):
        kind, code = _OPENAI_TYPES.get(
            status, ("server_error" if status >= 500 else "invalid_request_error", None)
        )
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return {"error": message}


def error_bytes(path: str, status: int, message: str) -> bytes:
    return json.dumps(error_body(path, status, message), ensure_ascii=False, separators=(",", ":")).encode()


def error_response(
    path: str, status: int, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(path, status, message), status_code=status, headers=headers)


def retry_after_value(seconds: float) -> bytes:
    """``Retry-After`` in whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds))).encode()


async def send_error(
    send: Send, path: str, status: int, message: str, retry_after: float | None = None
) -> None:
    """Answer on a raw ASGI ``send`` (the proxy's hot path does not build Response objects)."""
    body = error_bytes(path, status, message)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if retry_after is not None:
        headers.append((b"retry-after", retry_after_value(retry_after)))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def stream_error_line(path: str, sse: bool, status: int, message: str) -> bytes:
    """The line that ends a broken stream, as the node writes it: NDJSON, or SSE then ``[DONE]``."""
    text = error_bytes(path, status, message)
    if sse:
        return b"data: " + text + b"\n\ndata: [DONE]\n\n"
    return text + b"\n"


def install_error_handlers(app: FastAPI) -> None:
    """404/405 and validation errors of the gateway's own routes (and extra routers) in the right shape."""

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = [str(error.get("msg", "invalid")) for error in exc.errors()]
        return error_response(request.url.path, 400, "; ".join(problems) or "invalid request")

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        message = exc.detail if isinstance(exc.detail, str) else "error"
        if exc.status_code == 404 and message == "Not Found":
            message = f"{request.method} {request.url.path} not found"
        return error_response(request.url.path, exc.status_code, message, dict(exc.headers or {}))

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(request.url.path, 500, "internal server error")

    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
