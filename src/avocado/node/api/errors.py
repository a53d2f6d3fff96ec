"""One place that turns exceptions into HTTP errors: Ollama's shape, or OpenAI's under ``/v1``.

Ollama: ``{"error": "message"}``. OpenAI: ``{"error": {"message", "type", "param", "code"}}``.
Unexpected exceptions are logged with their traceback and answered with a plain 500.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from avocado.node.engine.errors import EngineError, ModelLoadError, QueueFull
from avocado.node.options import OptionError
from avocado.node.service import BadRequest, NotFound
from avocado.node.store.errors import BlobNotFound, InvalidModelFile, ModelNotFound, StoreError
from avocado.node.store.names import InvalidModelName

__all__ = ["error_body", "error_response", "install_error_handlers", "status_for"]

log = logging.getLogger(__name__)

_OPENAI_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("rate_limit_error", None),
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


def error_response(
    path: str, status: int, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(path, status, message), status_code=status, headers=headers)


def status_for(exc: BaseException) -> tuple[int, str]:
    """HTTP status and user-facing message for an exception raised while serving."""
    if isinstance(exc, NotFound | ModelNotFound):
        return 404, str(exc)
    if isinstance(exc, BadRequest | OptionError | InvalidModelName | InvalidModelFile | BlobNotFound):
        return 400, str(exc)
    if isinstance(exc, StoreError):
        return 400, str(exc)
    if isinstance(exc, QueueFull):
        return 503, str(exc)
    if isinstance(exc, ModelLoadError):
        return 500, str(exc)
    if isinstance(exc, EngineError):
        return 500, str(exc)
    return 500, "internal server error"


def _describe_validation(exc: RequestValidationError) -> str:
    problems = []
    for error in exc.errors():
        kind = error.get("type", "")
        if kind == "json_invalid":
            return "invalid JSON in request body"
        loc = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        problems.append(f"{loc}: {error.get('msg', 'invalid')}" if loc else str(error.get("msg", "invalid")))
    return "; ".join(problems) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(request.url.path, 400, _describe_validation(exc))

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        message = exc.detail if isinstance(exc.detail, str) else "error"
        if exc.status_code == 404 and message == "Not Found":
            message = f"{request.method} {request.url.path} not found"
        return error_response(request.url.path, exc.status_code, message, dict(exc.headers or {}))

    async def on_known(request: Request, exc: Exception) -> JSONResponse:
        status, message = status_for(exc)
        return error_response(request.url.path, status, message)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(request.url.path, 500, "internal server error")

    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    for kind in (BadRequest, NotFound, StoreError, EngineError, OptionError, InvalidModelName):
        app.add_exception_handler(kind, on_known)
    app.add_exception_handler(Exception, on_unexpected)
