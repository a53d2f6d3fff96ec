"""uvicorn's HTTP protocol with the two bounds it lacks on a request's head (line and headers).

uvicorn times out idle keep-alive connections (``timeout_keep_alive``), but a new connection that
sends nothing, or sends its headers a byte at a time (slowloris), is held for ever; and httptools
(llhttp) takes headers of any size, which uvicorn keeps in memory. Here a request's head must
arrive within ``read_timeout`` (``408`` otherwise) and be at most ``MAX_HEAD`` bytes (``431``); the
body is bounded by :class:`~avocado.serving.request_limits.RequestLimitsMiddleware`.
"""

from __future__ import annotations

import asyncio
import http
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from avocado.config import AvocadoSettings

__all__ = ["MAX_HEAD", "guarded_protocol", "uvicorn_options"]

MAX_HEAD = 64 << 10  # bytes of request line and headers (h11's default is 16 KiB; browsers send < 8)


class GuardedProtocol(HttpToolsProtocol):
    """:class:`HttpToolsProtocol`, timing each request's head and counting its bytes."""

    read_timeout = 30.0
    max_head = MAX_HEAD
    _head_timer: asyncio.TimerHandle | None = None
    _head_size = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head()  # a new connection owes a request head, as a request begun does

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_size = 0
        self._start_head()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._stop_head()
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a parser error; an oversized head's error is raised in :meth:`_count`."""
        if self._head_size > self.max_head:
            self._refuse(431, f"request line and headers exceed {self.max_head} bytes")
        else:
            super().send_400_response(msg)

    def _count(self, size: int) -> None:
        self._head_size += size
        if self._head_size > self.max_head:
            raise ValueError("request head too large")  # httptools stops; uvicorn calls send_400_response

    def _start_head(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.read_timeout, self._head_too_slow)

    def _stop_head(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.logger.info("closing a connection that sent no complete request in %gs", self.read_timeout)
            self._refuse(408, f"request line and headers not received within {self.read_timeout:g}s")

    def _refuse(self, status: int, message: str) -> None:
        body = message.encode()
        head = (
            f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\n"
            f"content-type: text/plain; charset=utf-8\r\ncontent-length: {len(body)}\r\n"
            "connection: close\r\n\r\n"
        )
        self.transport.write(head.encode() + body)
        self.transport.close()


def guarded_protocol(read_timeout: float) -> type[GuardedProtocol]:
    """The protocol class for uvicorn's ``http`` option, with ``read_timeout`` seconds per head."""
    return type("GuardedProtocol", (GuardedProtocol,), {"read_timeout": read_timeout})


def uvicorn_options(settings: AvocadoSettings) -> dict[str, Any]:
    """What a node's or a gateway's uvicorn runs with, besides the app, host and port."""
    return {"http": guarded_protocol(settings.read_timeout_seconds), "log_config": None, "access_log": False}
