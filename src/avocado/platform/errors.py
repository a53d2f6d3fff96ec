"""The platform API's errors: always ``{"detail": "..."}`` with the right status, never a traceback.

Domains raise :class:`PlatformError` (or a subclass) with a status and a readable message. Bad
input answers ``422`` with ``detail`` naming each field (``email: value is not a valid email
address``) and ``errors`` listing them one by one (``{"field": "email", "message": ...}``), so a
form can put each message next to its field; a body that is not a JSON object answers ``400``. Unknown
routes are ``404``, anything unexpected a plain ``500`` (logged, not sent).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

__all__ = [
    "Conflict",
    "Forbidden",
    "NotFound",
    "PlatformError",
    "TooManyRequests",
    "Unauthorized",
    "error_responses",
    "install_error_handlers",
]

log = logging.getLogger(__name__)


class PlatformError(Exception):
    """An answer of ``status`` with ``{"detail": detail}`` (and ``headers``)."""

    status = 400

    def __init__(self, detail: str, *, status: int | None = None, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.detail = detail
        if status is not None:
            self.status = status
        self.headers = headers or {}


class Unauthorized(PlatformError):
    """No credentials, or ones that are not (or no longer) valid."""

    status = 401

    def __init__(self, detail: str = "sign in first") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(PlatformError):
    status = 403


class NotFound(PlatformError):
    """Also the answer for another user's resource: whether it exists is not theirs to know."""

    status = 404


class Conflict(PlatformError):
    status = 409


class TooManyRequests(PlatformError):
    status = 429

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after))})
        self.retry_after = max(1, retry_after)


def _field(loc: tuple[Any, ...]) -> str:
    """``("body", "user", 0, "email")`` → ``user.0.email``; where the value came from is left out."""
    parts = [str(part) for part in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    return ".".join(parts)


def _problems(exc: RequestValidationError) -> list[dict[str, str]] | None:
    """Each problem as ``{"field", "message"}``; ``None`` when the body is not JSON at all."""
    problems = []
    for error in exc.errors():
        field = _field(tuple(error.get("loc", ())))
        not_an_object = not field and error.get("type") == "model_attributes_type"
        if error.get("type") == "json_invalid" or not_an_object:
            return None
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        if not field and error.get("type") == "missing":
            message = "a JSON body is required"
        problems.append({"field": field, "message": message})
    return problems


def _validation_response(exc: RequestValidationError) -> JSONResponse:
    problems = _problems(exc)
    if problems is None:
        return JSONResponse({"detail": "the request body must be a JSON object"}, status_code=400)
    detail = "; ".join(f"{p['field']}: {p['message']}" if p["field"] else p["message"] for p in problems)
    return JSONResponse({"detail": detail or "invalid request", "errors": problems}, status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    async def on_platform(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, PlatformError)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=exc.headers)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return _validation_response(exc)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else "error"
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"{request.method} {request.url.path} not found"
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=dict(exc.headers or {}))

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": "internal server error"}, status_code=500)

    app.add_exception_handler(PlatformError, on_platform)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)


_WHY = {
    400: "Malformed request",
    401: "Not signed in, or the session ended",
    403: "Signed in, but not allowed",
    404: "No such resource (or not yours)",
    409: "Conflicts with what exists",
    413: "The body (or the file in it) is too large",
    415: "Not a type this route takes",
    422: "Invalid input: detail names each field",
    429: "Too many attempts: wait Retry-After seconds",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for error answers, all ``{"detail": "..."}``."""
    schema = {"type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]}
    return {
        status: {"description": _WHY[status], "content": {"application/json": {"schema": schema}}}
        for status in statuses
    }
