"""ASGI middleware: a log line per request and the optional API key.

Plain ASGI (not ``BaseHTTPMiddleware``) so streamed responses pass through untouched.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from avocado.logs import request_fields
from avocado.node.api.errors import error_body
from avocado.node.credentials import ApiKeys
from avocado.request_id import request_id_of

__all__ = ["ROUTINE", "ApiKeyMiddleware", "JsonBodyMiddleware", "RequestLogMiddleware", "log_level"]

log = logging.getLogger("avocado.request")

# Requests that do no work and come by the thousand (a gateway checks every node every few seconds,
# a load balancer probes, a UI polls the model list): logged at debug unless they fail.
ROUTINE = frozenset(
    {
        ("GET", "/"),
        ("HEAD", "/"),
        ("GET", "/api/tags"),
        ("GET", "/api/ps"),
        ("GET", "/api/version"),
        ("GET", "/health/live"),
        ("HEAD", "/health/live"),
        ("GET", "/health/ready"),
        ("HEAD", "/health/ready"),
    }
)


def log_level(method: str, path: str, status: int) -> int:
    """``info`` for a request that does work (or fails), ``debug`` for routine traffic."""
    return logging.DEBUG if (method, path) in ROUTINE and status < 500 else logging.INFO


class RequestLogMiddleware:
    """Logs method, path, model, status, duration and request id when each response ends, at
    ``info`` (routine traffic such as health checks at ``debug``, see :data:`ROUTINE`).

    The request id (:class:`avocado.request_id.RequestIdMiddleware`, outside this one) is the caller's
    ``X-Request-ID`` when it is sane (a gateway passes its own, so one request can be followed from
    gateway to node), else a new one.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_of(scope)  # set by RequestIdMiddleware, which answers with it
        fields: dict[str, Any] = {"method": scope["method"], "path": scope["path"]}
        token = request_fields.set(fields)
        status = 500

        def send_wrapper(message: Message) -> Awaitable[None]:  # no coroutine of its own per chunk
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            return send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            request_fields.reset(token)
            fields["status"] = status
            fields["duration_ms"] = round((time.perf_counter() - started) * 1000, 2)
            fields["request_id"] = request_id
            log.log(log_level(scope["method"], scope["path"], status), "request", extra={"fields": fields})


class ApiKeyMiddleware:
    """Requires ``Authorization: Bearer <key>`` on every route except ``GET``/``HEAD /``.

    ``keys`` may change while the node runs (a rotation); ``key`` is a fixed one.
    """

    def __init__(self, app: ASGIApp, key: str | None = None, *, keys: ApiKeys | None = None) -> None:
        if (key is None) == (keys is None):
            raise TypeError("ApiKeyMiddleware takes a key or keys")
        self.app = app
        self.keys = keys if keys is not None else ApiKeys(key or "")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["path"] == "/" and scope["method"] in ("GET", "HEAD")):
            await self.app(scope, receive, send)
            return
        given = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, credential = value.partition(b" ")
                if scheme.lower() == b"bearer":
                    given = credential.strip()
                break
        if given and self.keys.accepts(given):
            await self.app(scope, receive, send)
            return
        message = "unauthorized: a valid API key is required (Authorization: Bearer <key>)"
        body = json.dumps(error_body(scope["path"], 401, message)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b"Bearer"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class JsonBodyMiddleware:
    """Reads request bodies as JSON whatever their Content-Type says, as Ollama does.

    Ollama's own examples are ``curl http://localhost:11434/api/chat -d '{...}'``, which sends
    ``application/x-www-form-urlencoded``; Ollama decodes the body as JSON regardless. Blob uploads
    (``/api/blobs/...``) and the registry (``/v2/...``) carry bytes and are left alone.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("POST", "DELETE") and _json_route(scope["path"]):
            headers = [(name, value) for name, value in scope["headers"] if name != b"content-type"]
            kinds = [value for name, value in scope["headers"] if name == b"content-type"]
            if not kinds or not kinds[0].split(b";")[0].strip().lower().endswith(b"json"):
                scope = {**scope, "headers": [*headers, (b"content-type", b"application/json")]}
        await self.app(scope, receive, send)


def _json_route(path: str) -> bool:
    return (path.startswith("/api/") and not path.startswith("/api/blobs/")) or path.startswith("/v1/")
