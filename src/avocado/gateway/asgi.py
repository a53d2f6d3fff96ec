"""ASGI plumbing for the proxy: read a body once, replay it, notice a client leaving, filter headers."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Protocol

from starlette.types import Message, Receive

from avocado.headers import HOP_BY_HOP

__all__ = ["FORWARDED", "read_body", "replay", "response_headers", "until_disconnected"]

# Request headers a node gets from the client; the rest (the client's key above all) stays here.
FORWARDED = frozenset({b"content-type", b"accept", b"user-agent", b"traceparent", b"tracestate"})
# Response headers that describe the node's connection or its own policies, not the answer.
_DROPPED = HOP_BY_HOP | {b"date", b"server", b"vary", b"x-request-id"}


class Cancellable(Protocol):
    """What :func:`until_disconnected` marks: the exchange it runs for."""

    cancelled: bool
    finished: bool


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body (cut just past ``limit`` bytes); ``None`` if the client disconnected first."""
    message = await receive()
    if message["type"] == "http.disconnect":
        return None
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return body
    parts = [body]
    size = len(body)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        parts.append(message.get("body", b""))
        size += len(parts[-1])
        if size > limit + 1:
            return b"".join(parts)[: limit + 1]  # enough to tell it is too big
        if not message.get("more_body", False):
            return b"".join(parts)


def replay(body: bytes) -> Receive:
    """A ``receive`` for the Request handed to the admission: the body already read, once."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> Message:
        return pending.pop() if pending else {"type": "http.disconnect"}

    return receive


async def until_disconnected(forward: Coroutine[Any, Any, None], receive: Receive, ex: Cancellable) -> None:
    """Run ``forward`` unless the client disconnects first: then cancel it (which closes the node's
    connection, so the node stops too) and mark the exchange cancelled.

    A plain task and ``Task.cancel`` rather than an anyio task group: this runs for every request.
    """
    task = asyncio.current_task()
    assert task is not None
    forwarding = True

    async def watch() -> None:
        # The body has been read: the next message is the disconnect (uvicorn sends it at the end too).
        while (await receive())["type"] != "http.disconnect":
            pass
        if forwarding and not ex.finished:
            ex.cancelled = True
            task.cancel()

    watcher = asyncio.get_running_loop().create_task(watch(), name="gateway disconnect watch")
    try:
        await forward
    except asyncio.CancelledError:
        if not ex.cancelled or task.uncancel() > 0:
            raise  # not ours: the server is going down
    finally:
        forwarding = False
        watcher.cancel()


def response_headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [
        (name, value)
        for name, value in raw
        if (lowered := name.lower()) not in _DROPPED and not lowered.startswith(b"access-control-")
    ]
