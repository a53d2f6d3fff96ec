"""``/health/live`` and ``/health/ready``: whether the process is up, and whether it can serve.

Plain ASGI middleware that answers both paths before the API key is asked for, as ``GET /`` is
answered: orchestrators and load balancers probe without credentials. ``live`` is ``200`` while
the process answers at all; ``ready`` is ``200`` when the node can serve (``readiness`` returns
nothing), else ``503`` with the reason.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["LIVE", "READY", "HealthMiddleware", "Readiness"]

LIVE = "/health/live"
READY = "/health/ready"

# Why the node cannot serve now, or None when it can.
Readiness = Callable[[], Awaitable[str | None]]


class HealthMiddleware:
    def __init__(self, app: ASGIApp, readiness: Readiness) -> None:
        self.app = app
        self.readiness = readiness

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"] if scope["type"] == "http" else ""
        if path not in (LIVE, READY):
            await self.app(scope, receive, send)
            return
        headers = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
        if scope["method"] not in ("GET", "HEAD"):
            status, body = 405, {"error": "Method Not Allowed"}
            headers.append((b"allow", b"GET, HEAD"))
        elif (reason := await self.readiness() if path == READY else None) is None:
            status, body = 200, {"status": "ok"}
        else:
            status, body = 503, {"status": "unavailable", "reason": reason}
        data = json.dumps(body).encode()
        headers.append((b"content-length", str(len(data)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else data})
