"""The error shapes every Avocado API answers in: Ollama's, or OpenAI's under ``/v1``.

Ollama: ``{"error": "message"}``. OpenAI: ``{"error": {"message", "type", "param", "code"}}``.
Nodes, the gateway and the platform all answer this way, so that a client sees the same errors
whichever it talks to. :func:`install_error_handlers` gives a FastAPI app the handlers they share:
validation errors as 400, routing errors (404, 405) in the right shape, and a plain 500 (the
traceback logged, never sent) for anything unexpected. Each service adds its own exceptions.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match

__all__ = [
    "allowed_methods",
    "describe_validation",
    "error_body",
    "error_bytes",
    "error_response",
    "install_error_handlers",
    "is_openai_path",
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


def describe_validation(exc: RequestValidationError) -> str:
    """One line for what was wrong with a request body, as Ollama words the common case."""
    problems = []
    for error in exc.errors():
        if error.get("type", "") == "json_invalid":
            return "invalid JSON in request body"
        loc = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        problems.append(f"{loc}: {error.get('msg', 'invalid')}" if loc else str(error.get("msg", "invalid")))
    return "; ".join(problems) or "invalid request"


_METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> str:
    """Every method the app serves at the request's path, for a ``405``'s ``Allow``.

    Starlette names only the methods of the first route whose path matched, though a path may have
    several routes (``HEAD`` and ``POST /api/blobs/{digest}``), so ``Allow`` left out methods that work.
    Each method is tried on the app's routes (included routers too) as the router itself would.
    """
    routes = request.app.router.routes
    allowed = [
        method
        for method in _METHODS
        if any(route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes)
    ]
    return ", ".join(allowed)


StatusFor = Callable[[Exception], tuple[int, str]]


def install_error_handlers(app: FastAPI, known: Mapping[type[Exception], StatusFor] | None = None) -> None:
    """The shared handlers, plus ``known`` exception types answered with the status and message
    their function gives."""

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(request.url.path, 400, describe_validation(exc))

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        message = exc.detail if isinstance(exc.detail, str) else "error"
        headers = dict(exc.headers or {})
        if exc.status_code == 404 and message == "Not Found":
            message = f"{request.method} {request.url.path} not found"
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(request) or headers.get("Allow", "")
        return error_response(request.url.path, exc.status_code, message, headers)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(request.url.path, 500, "internal server error")

    def on_known(status_for: StatusFor) -> Callable[[Request, Exception], Any]:
        async def handler(request: Request, exc: Exception) -> JSONResponse:
            status, message = status_for(exc)
            return error_response(request.url.path, status, message)

        return handler

    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)
    for kind, status_for in (known or {}).items():
        app.add_exception_handler(kind, on_known(status_for))
    app.add_exception_handler(Exception, on_unexpected)
