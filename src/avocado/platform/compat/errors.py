"""Errors of the OpenAI-compatible API in OpenAI's documented shape, so its clients read them:
``{"error": {"message", "type", "param", "code"}}`` (the rest of the platform answers ``{"detail"}``)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from avocado.platform.errors import PlatformError

__all__ = ["OpenAIError", "install_openai_errors"]

_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error"}


class OpenAIError(PlatformError):
    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str | None = None,
        param: str | None = None,
        kind: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        extra = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
        super().__init__(message, status=status, headers={**extra, **(headers or {})})
        self.code, self.param, self.kind = code, param, kind

    def body(self) -> dict[str, object]:
        kind = self.kind or _TYPES.get(self.status, "api_error")
        return {"error": {"message": self.detail, "type": kind, "param": self.param, "code": self.code}}


def install_openai_errors(app: FastAPI) -> None:
    async def on_openai(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, OpenAIError)
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    app.add_exception_handler(OpenAIError, on_openai)
