"""A lean HTTP/1.1 client for the request path: keep-alive connections, answers read as they come.

The gateway reaches its nodes with it, and the platform its upstream (the gateway, or a node or a
plain Ollama) for chat: the hot paths of both.

Each request through the gateway is one more HTTP exchange; with httpx (pure-Python parsing under
several anyio layers) that exchange cost about a millisecond of CPU on a small machine, more than the
gateway's whole latency budget. Here a request is one ``write`` on a pooled asyncio connection and the
answer is parsed by ``httptools`` (llhttp, which uvicorn uses too): the status and headers first, then
the body chunk by chunk (chunked transfer encoding undone), with reading paused while a slow client
lets more than :data:`HIGH_WATER` bytes pile up.

Two deadlines keep a wedged node from holding a request forever, both kept by one timer per
exchange (nothing is added per chunk but the arrival time): ``first_byte_timeout`` from the request
to the first byte of the answer's body (a streamed answer's first token; a non-streamed answer's
whole body), long enough for the node to load a model, and ``idle_timeout`` between the body's
chunks after that. Either raises :class:`TimedOut`, and the connection is closed, which is how the
node learns that its client has gone. Time the gateway stops reading for a slow client does not count.

Only what those paths need: requests with a body of known length, answers streamed back, TLS for
``https`` origins (public tunnel URLs), no redirects, no proxies, no compression. Health checks and
listings, off the hot path, keep using httpx.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import time
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import httptools

__all__ = [
    "DEFAULT_FIRST_BYTE_TIMEOUT",
    "DEFAULT_IDLE_TIMEOUT",
    "Broken",
    "ConnectFailed",
    "Origin",
    "TimedOut",
    "Upstream",
    "UpstreamError",
    "UpstreamResponse",
]

HIGH_WATER = 1 << 20  # bytes of answer held for a slow client before reading from the node pauses
LOW_WATER = 1 << 18
_JOIN_LIMIT = 1 << 16  # bodies up to this size go out in the same write as the head
DEFAULT_FIRST_BYTE_TIMEOUT = 300.0  # seconds: a model load, as Ollama's OLLAMA_LOAD_TIMEOUT
DEFAULT_IDLE_TIMEOUT = 60.0  # seconds between two chunks of an answer


class UpstreamError(Exception):
    """The node could not be reached, or broke off the exchange."""


class ConnectFailed(UpstreamError):
    """No connection (refused, unreachable, TLS, timeout): the request never reached the node."""


class Broken(UpstreamError):
    """The connection closed, or the node sent something that is not HTTP, before the answer ended."""

    def __init__(self, message: str, *, answered: bool) -> None:
        super().__init__(message)
        self.answered = answered  # any byte of the answer had arrived


class TimedOut(Broken):
    """The node sent nothing for too long: no first byte of the body, or no next chunk.

    ``first_byte`` says which: True while no byte of the body had arrived (another node may take
    the request), False once it had (the answer is cut).
    """

    def __init__(self, message: str, *, answered: bool, first_byte: bool) -> None:
        super().__init__(message, answered=answered)
        self.first_byte = first_byte


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a node listens, parsed once from its URL."""

    tls: bool
    host: str
    port: int
    base_path: bytes  # a path prefix in the node's URL, without the trailing slash
    host_header: bytes

    @classmethod
    def parse(cls, url: str) -> Origin:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        tls = parts.scheme == "https"
        host = parts.hostname
        header = f"[{host}]".encode() if ":" in host else host.encode("idna")
        if parts.port is not None:
            header += b":%d" % parts.port
        port = parts.port or (443 if tls else 80)
        return cls(tls, host, port, parts.path.rstrip("/").encode(), header)


class UpstreamResponse:
    """A node's answer: ``status`` and ``headers`` (lower-case names) now, the body as it arrives.

    :meth:`close` it in every case: a complete answer hands the connection back for the next request,
    anything else closes the connection (which is how a node learns that its client has gone).
    """

    __slots__ = (
        "_buffered",
        "_chunks",
        "_complete",
        "_connection",
        "_error",
        "_keep_alive",
        "_paused",
        "_released",
        "_waiter",
        "headers",
        "status",
    )

    def __init__(self, connection: _Connection) -> None:
        self._connection = connection
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._complete = False
        self._keep_alive = False
        self._error: Broken | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        self._released = False

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    async def next_chunk(self) -> bytes | None:
        """The next piece of the body; ``None`` at its end. Raises :class:`Broken` if it was cut off."""
        while True:
            if self._chunks:
                chunk = self._chunks.popleft()
                self._buffered -= len(chunk)
                if self._paused and self._buffered <= LOW_WATER:
                    self._paused = False
                    self._connection.resume_reading()
                return chunk
            if self._error is not None:
                raise self._error
            if self._complete:
                return None
            await self._wait()

    async def read(self) -> bytes:
        """The rest of the body at once (error bodies, which are small)."""
        parts = []
        while (chunk := await self.next_chunk()) is not None:
            parts.append(chunk)
        return b"".join(parts)

    def close(self) -> None:
        if self._released:
            return
        self._released = True
        self._connection.finished(reusable=self._complete and self._keep_alive and self._error is None)

    async def _wait(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        try:
            await waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- fed by the connection ----------------------------------------------------------------------

    def _feed(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        self._buffered += len(chunk)
        if not self._paused and self._buffered > HIGH_WATER:
            self._paused = True
            self._connection.pause_reading()
        self._wake()

    def _end(self, keep_alive: bool) -> None:
        self._complete, self._keep_alive = True, keep_alive
        self._wake()

    def _fail(self, error: Broken) -> None:
        if not self._complete and self._error is None:
            self._error = error
            self._wake()


class _Connection(asyncio.Protocol):
    """One keep-alive connection to a node; one exchange at a time."""

    def __init__(self, upstream: Upstream, origin: Origin) -> None:
        self.upstream = upstream
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.response: UpstreamResponse | None = None
        self.headers_ready: asyncio.Future[None] | None = None
        self.closed = False
        self.lost = asyncio.get_running_loop().create_future()  # done when the connection is gone
        self.idle_since = 0.0
        self.answered = False  # a byte of the current answer has arrived
        self.loop = asyncio.get_running_loop()
        # The deadlines of the current exchange (see the module's docstring), kept by one timer.
        self.timer: asyncio.TimerHandle | None = None
        self.sent_at = 0.0
        self.last_data = 0.0  # when the node last sent anything (loop time)
        self.body_started = False
        self.reading_paused = False

    # -- asyncio.Protocol ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses

    def data_received(self, data: bytes) -> None:
        if self.response is None:  # nothing was asked: the connection is out of step
            self.close()
            return
        self.answered = True
        self.last_data = self.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(f"not a valid HTTP answer: {exc}")
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._disarm()
        if not self.lost.done():
            self.lost.set_result(None)
        self.upstream.forget(self)
        reason = f"connection lost: {exc}" if exc else "the node closed the connection"
        self._fail(reason)

    # -- httptools callbacks ------------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.response is not None:
            self.response.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        if self.response is not None:
            self.response.status = self.parser.get_status_code()
        if self.headers_ready is not None and not self.headers_ready.done():
            self.headers_ready.set_result(None)

    def on_body(self, body: bytes) -> None:
        if not self.body_started:  # from now on the deadline is the idle one (once per exchange)
            self.body_started = True
            self._disarm()
            self.timer = self.loop.call_at(self.last_data + self.upstream.idle_timeout, self._check)
        if self.response is not None:
            self.response._feed(body)

    def on_message_complete(self) -> None:
        self._disarm()
        if self.response is not None:
            self.response._end(self.parser.should_keep_alive())

    # -- the exchange -------------------------------------------------------------------------------

    async def exchange(
        self, method: bytes, path: bytes, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> UpstreamResponse:
        """Send one request; returns once the answer's headers are in."""
        assert self.transport is not None
        response = UpstreamResponse(self)
        self.response, self.answered = response, False
        ready = self.headers_ready = asyncio.get_running_loop().create_future()
        head = [
            b"%s %s%s HTTP/1.1\r\nhost: %s\r\n"
            % (method, self.origin.base_path, path, self.origin.host_header)
        ]
        head.extend(b"%s: %s\r\n" % (name, value) for name, value in headers)
        head.append(b"content-length: %d\r\n\r\n" % len(body))
        if len(body) <= _JOIN_LIMIT:
            self.transport.write(b"".join(head) + body)
        else:
            self.transport.write(b"".join(head))
            self.transport.write(body)
        self._arm()
        try:
            await ready
        except BaseException:
            self.close()  # abandoned (cancelled) or broken: this connection cannot be reused
            raise
        return response

    def finished(self, reusable: bool) -> None:
        self._disarm()
        self.response, self.headers_ready = None, None
        if reusable and not self.closed:
            self.upstream.release(self)
        else:
            self.close()

    def pause_reading(self) -> None:
        self.reading_paused = True
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        self.reading_paused = False
        self.last_data = self.loop.time()  # the node's silence counts from now, not from the pause
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def close(self) -> None:
        self.closed = True
        self._disarm()
        if self.transport is not None:
            self.transport.close()

    # -- deadlines ----------------------------------------------------------------------------------

    def _arm(self) -> None:
        self.sent_at = self.last_data = self.loop.time()
        self.body_started = False
        self.reading_paused = False
        self.timer = self.loop.call_at(self.sent_at + self.upstream.first_byte_timeout, self._check)

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _check(self) -> None:
        """The timer: time the exchange out if its deadline passed, else look again at the deadline."""
        self.timer = None
        if self.response is None or self.closed:
            return
        now = self.loop.time()
        if not self.body_started:
            limit, due = self.upstream.first_byte_timeout, self.sent_at + self.upstream.first_byte_timeout
        else:
            limit = self.upstream.idle_timeout
            due = now + limit if self.reading_paused else self.last_data + limit
        if now < due:
            self.timer = self.loop.call_at(due, self._check)
            return
        if self.body_started:
            message = f"the node sent nothing for {limit:g}s in the middle of its answer"
        else:
            message = f"no answer from the node within {limit:g}s"
        self._fail(message, TimedOut(message, answered=self.answered, first_byte=not self.body_started))
        self.close()

    def _fail(self, reason: str, error: Broken | None = None) -> None:
        if error is None:
            error = Broken(reason, answered=self.answered)
        if self.headers_ready is not None and not self.headers_ready.done():
            self.headers_ready.set_exception(error)
        if self.response is not None:
            self.response._fail(error)


class Upstream:
    """Keep-alive connections to every node, shared by all requests (idle ones kept up to ``max_idle``)."""

    def __init__(
        self,
        connect_timeout: float = 5.0,
        max_idle: int = 256,
        idle_expiry: float = 30.0,
        tls: ssl.SSLContext | None = None,
        *,
        first_byte_timeout: float = DEFAULT_FIRST_BYTE_TIMEOUT,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.first_byte_timeout = first_byte_timeout
        self.idle_timeout = idle_timeout
        self.max_idle = max_idle
        self.idle_expiry = idle_expiry
        self._origins: dict[str, Origin] = {}
        self._idle: dict[Origin, list[_Connection]] = {}
        self._tls = tls

    async def request(
        self, url: str, method: bytes, path: bytes, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> UpstreamResponse:
        """Send a request to the node at ``url``; returns when the answer's headers are in.

        Raises :class:`ConnectFailed` or :class:`Broken` (:class:`TimedOut` among them). A kept-alive
        connection that turns out to have been closed by the node before it answered is replaced
        once by a new one.
        """
        origin = self._origins.get(url)
        if origin is None:
            origin = self._origins[url] = Origin.parse(url)
        connection = self._reuse(origin)
        if connection is not None:
            try:
                return await connection.exchange(method, path, headers, body)
            except Broken as exc:
                if exc.answered or isinstance(exc, TimedOut):  # a node that said nothing: no second wait
                    raise
        connection = await self._connect(origin)
        return await connection.exchange(method, path, headers, body)

    def release(self, connection: _Connection) -> None:
        idle = self._idle.setdefault(connection.origin, [])
        if len(idle) >= self.max_idle:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        idle.append(connection)

    def forget(self, connection: _Connection) -> None:
        idle = self._idle.get(connection.origin)
        if idle and connection in idle:
            idle.remove(connection)

    async def aclose(self) -> None:
        """Close the idle connections, and wait (a second at most) until they are gone (TLS says goodbye)."""
        connections = [connection for idle in self._idle.values() for connection in idle]
        self._idle.clear()
        for connection in connections:
            connection.close()
        if connections:
            await asyncio.wait([connection.lost for connection in connections], timeout=1.0)
        for connection in connections:
            if not connection.lost.done() and connection.transport is not None:
                connection.transport.abort()

    def _reuse(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        if not idle:
            return None
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            if not connection.closed and now - connection.idle_since < self.idle_expiry:
                return connection
            connection.close()
        return None

    async def _connect(self, origin: Origin) -> _Connection:
        loop = asyncio.get_running_loop()
        tls = self._tls_context() if origin.tls else None
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, connection = await loop.create_connection(
                    lambda: _Connection(self, origin),
                    origin.host,
                    origin.port,
                    ssl=tls,
                    server_hostname=origin.host if tls is not None else None,
                )
        except TimeoutError:
            raise ConnectFailed(f"connecting timed out after {self.connect_timeout:g}s") from None
        except OSError as exc:
            raise ConnectFailed(f"cannot connect: {exc.strerror or exc}") from None
        return connection

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls
