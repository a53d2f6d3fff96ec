"""Bounds on reading a request's body: its size, and how slowly it may come.

A body larger than ``max_body`` (``max_upload`` for blob uploads) is refused with ``413``: at once
when its ``Content-Length`` says so, else as soon as that much has arrived. A body must arrive
within ``read_timeout`` plus one second per :data:`MIN_RATE` bytes received (Apache's
``mod_reqtimeout`` rule): a client that sends a byte now and then (slowloris) gets ``408``. Only
time spent waiting for the client counts, not time the route takes to store what came. The
request's head is bounded by :mod:`avocado.serving.protocol`.

Plain ASGI: the limits apply while a route reads, so the route's own error shape answers them
(an ``HTTPException`` raised while FastAPI reads a body reaches its handler as it is).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Literal, TypedDict

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from avocado.api_errors import error_body
from avocado.config import AvocadoSettings
from avocado.units import format_size

__all__ = ["MIN_RATE", "Limits", "RequestLimitsMiddleware", "is_upload", "limits_of"]

MIN_RATE = 1024  # bytes per second a body must keep up, on average, after read_timeout
CLOSE = {"connection": "close"}  # what is left of a refused body is not read
_UPLOAD = re.compile(r"^/api/blobs/|^/v2/.+/blobs/uploads/|^/api/v1/conversations/import$")


def is_upload(path: str) -> bool:
    """Routes that receive model files (or the platform's imports of conversations), bounded by
    ``max_upload`` rather than ``max_body``."""
    return _UPLOAD.match(path) is not None


class Limits(TypedDict):
    """:class:`RequestLimitsMiddleware`'s bounds: bytes of a body, of an upload; seconds to send them."""

    max_body: int
    max_upload: int
    read_timeout: float


def limits_of(settings: AvocadoSettings) -> Limits:
    """The bounds a server's settings give (``max_body``, ``max_upload``, ``read_timeout``)."""
    return Limits(
        max_body=settings.max_body_bytes,
        max_upload=settings.max_upload_bytes,
        read_timeout=settings.read_timeout_seconds,
    )


class RequestLimitsMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body: int,
        max_upload: int,
        read_timeout: float,
        error_key: Literal["error", "detail"] = "error",
    ) -> None:
        """``error_key``: ``"error"`` answers as Ollama and OpenAI do (the node, the gateway),
        ``"detail"`` as the platform's API does."""
        self.app = app
        self.error_key = error_key
        self.max_body = max_body
        self.max_upload = max_upload
        self.read_timeout = read_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_upload if is_upload(scope["path"]) else self.max_body
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(scope, send, 413, _too_large(limit), self.error_key)
            return
        await self.app(scope, _Body(receive, limit, self.read_timeout), send)


class _Body:
    """``receive`` that counts body bytes and the time spent waiting for them."""

    __slots__ = ("_done", "_limit", "_read_timeout", "_receive", "_received", "_waited")

    def __init__(self, receive: Receive, limit: int, read_timeout: float) -> None:
        self._receive = receive
        self._limit = limit
        self._read_timeout = read_timeout
        self._received = 0
        self._waited = 0.0
        self._done = False

    async def __call__(self) -> Message:
        if self._done:  # the body is in: what comes next is the disconnect, whenever it comes
            return await self._receive()
        allowed = self._read_timeout + self._received / MIN_RATE - self._waited
        started = time.monotonic()
        try:
            async with asyncio.timeout(max(allowed, 0)):
                message = await self._receive()
        except TimeoutError:
            raise HTTPException(
                408,
                f"request body not received in time ({self._received} bytes came in {self._waited:.0f}s)",
                headers=CLOSE,
            ) from None
        self._waited += time.monotonic() - started
        if message["type"] == "http.request":
            self._received += len(message.get("body", b""))
            if self._received > self._limit:
                raise HTTPException(413, _too_large(self._limit), headers=CLOSE)
            self._done = not message.get("more_body", False)
        return message


def _too_large(limit: int) -> str:
    return f"request body too large: at most {format_size(limit)}"


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(scope: Scope, send: Send, status: int, message: str, error_key: str) -> None:
    shaped = {"detail": message} if error_key == "detail" else error_body(scope["path"], status, message)
    body = json.dumps(shaped).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
