"""A TCP proxy for tests: put it between a client and a broker, then ``cut()`` and ``restore()`` the line.

``cut`` drops every connection at once (as a crashed broker or a pulled cable would, seen from the
client) and stops listening, so new connections are refused; ``restore`` listens again on the same port.
With ``ssl`` (a server context) it is a TLS terminator in front of a plain broker: a client's bytes
are forwarded only after its TLS handshake succeeded.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl as ssl_module

__all__ = ["TcpProxy"]


class TcpProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target_host:target_port`` from :meth:`start` to :meth:`close`."""

    def __init__(self, target_host: str, target_port: int, ssl: ssl_module.SSLContext | None = None) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.ssl = ssl
        self.port = 0
        self.accepted = 0  # connections forwarded since start (with ``ssl``: after a good handshake)
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.WriteTransport] = set()
        self._handlers: set[asyncio.Task[None]] = set()

    def url(self, scheme: str = "amqp", userinfo: str = "guest:guest") -> str:
        return f"{scheme}://{userinfo}@127.0.0.1:{self.port}/"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, ssl=self.ssl)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Drop every open connection and refuse new ones."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
        for transport in list(self._transports):
            transport.abort()
        self._transports.clear()
        if self._handlers:
            await asyncio.wait(list(self._handlers))

    async def restore(self) -> None:
        """Accept connections again, on the same port."""
        if self._server is None:
            await self.start()

    async def close(self) -> None:
        await self.cut()

    async def __aenter__(self) -> TcpProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._forward(client_reader, client_writer)
        finally:
            self._handlers.discard(task)

    async def _forward(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        self._transports.add(client_writer.transport)
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                self.target_host, self.target_port
            )
        except OSError:
            client_writer.transport.abort()
            return
        self._transports.add(upstream_writer.transport)
        self.accepted += 1
        pipes = [
            asyncio.create_task(_pipe(client_reader, upstream_writer)),
            asyncio.create_task(_pipe(upstream_reader, client_writer)),
        ]
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pipe in pipes:
                pipe.cancel()
            for writer in (client_writer, upstream_writer):
                writer.transport.abort()
                self._transports.discard(writer.transport)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
