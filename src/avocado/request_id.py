"""Request ids: one per request, on every response (``X-Request-ID``), every log line and every node call.

A client's own id is kept when it is sane (letters, digits and ``._:-``, at most 128), so a caller can
follow its request through the gateway and onto the node.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Awaitable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["RequestIdMiddleware", "new_request_id", "request_id_of"]

_SANE_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")
# New ids: 64 random bits per process, then a counter; 32 hex digits like a UUID, unique across
# replicas, and a tenth of uuid4's cost on every request.
_PREFIX = os.urandom(8).hex()
_COUNTER = itertools.count(1)


def _reseed() -> None:
    global _PREFIX, _COUNTER
    _PREFIX, _COUNTER = os.urandom(8).hex(), itertools.count(1)


os.register_at_fork(after_in_child=_reseed)  # a forked worker is another replica


def new_request_id() -> str:
    return f"{_PREFIX}{next(_COUNTER):016x}"


def request_id_of(scope: Scope) -> str:
    """The request's id: set by :class:`RequestIdMiddleware`, else the client's sane one, else a new one."""
    state = scope.get("state")
    if state is not None and (known := state.get("request_id")):
        return str(known)
    for name, value in scope["headers"]:
        if name == b"x-request-id" and _SANE_ID.match(value):
            return str(value.decode())
    return new_request_id()


class RequestIdMiddleware:
    """Gives every request an id (``scope["state"]["request_id"]``) and every response ``X-Request-ID``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        header = (b"x-request-id", request_id.encode())

        def send_with_id(message: Message) -> Awaitable[None]:  # no coroutine of its own per chunk
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            return send(message)

        await self.app(scope, receive, send_with_id)
