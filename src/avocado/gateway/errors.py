"""Errors the gateway answers itself, in the shapes of :mod:`avocado.api_errors` (the node's too).

On top of those: ``Retry-After`` values, errors written on a raw ASGI ``send`` (the proxy's hot path
builds no Response objects) and the line that ends a stream cut short.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from starlette.types import Send

from avocado.api_errors import error_body, error_bytes, error_response, install_error_handlers, is_openai_path

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


def retry_after_value(seconds: float) -> bytes:
    """``Retry-After`` in whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds))).encode()


async def send_error(
    send: Send,
    path: str,
    status: int,
    message: str,
    retry_after: float | None = None,
    extra: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    """Answer on a raw ASGI ``send`` (the proxy's hot path does not build Response objects)."""
    body = error_bytes(path, status, message)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if retry_after is not None:
        headers.append((b"retry-after", retry_after_value(retry_after)))
    headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def stream_error_line(path: str, sse: bool, status: int, message: str) -> bytes:
    """The line that ends a broken stream, as the node writes it: NDJSON, or SSE then ``[DONE]``."""
    text = error_bytes(path, status, message)
    if sse:
        return b"data: " + text + b"\n\ndata: [DONE]\n\n"
    return text + b"\n"
