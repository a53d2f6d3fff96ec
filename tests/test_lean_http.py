"""The lean HTTP/1.1 client of the gateway and the platform's chat: keep-alive, chunked bodies,
back-pressure, broken or stale connections."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import pytest

from avocado.lean_http import Broken, ConnectFailed, Origin, TimedOut, Upstream
from tests.support import free_port

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(20):
            await scenario()

    asyncio.run(bounded())


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    return head, await reader.readexactly(length)


def answer(body: bytes, *, close: bool = False) -> bytes:
    extra = b"connection: close\r\n" if close else b""
    return b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n%scontent-length: %d\r\n\r\n%s" % (
        extra,
        len(body),
        body,
    )


class Server:
    """A raw HTTP server for one test; every connection's writer is closed when its handler ends."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.handlers: set[asyncio.Task[None]] = set()
        self.listening: asyncio.Server | None = None

    async def start(self) -> str:
        self.listening = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.listening.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
                await self.handler(reader, writer)
        finally:
            writer.close()

    async def stop(self, upstream: Upstream) -> None:
        await upstream.aclose()
        assert self.listening is not None
        self.listening.close()
        await asyncio.wait_for(asyncio.gather(*self.handlers, return_exceptions=True), 5)


async def server(handler: Handler) -> tuple[Server, str]:
    running = Server(handler)
    return running, await running.start()


def test_origins_parse_host_port_and_prefix() -> None:
    assert Origin.parse("https://node.example/base/") == Origin(
        True, "node.example", 443, b"/base", b"node.example"
    )
    assert Origin.parse("http://[::1]:8080") == Origin(False, "::1", 8080, b"", b"[::1]:8080")
    with pytest.raises(ValueError):
        Origin.parse("ftp://node")


def test_a_connection_is_kept_alive_and_its_request_is_sent_whole() -> None:
    seen: list[tuple[bytes, bytes]] = []
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        with contextlib.suppress(asyncio.IncompleteReadError):
            while True:
                seen.append(await read_request(reader))
                writer.write(answer(b"pong"))
                await writer.drain()

    async def scenario() -> None:
        listening, url = await server(handler)
        upstream = Upstream()
        for _ in range(3):
            response = await upstream.request(
                url + "/prefix", b"POST", b"/api/chat", [(b"x-request-id", b"r1")], b'{"a":1}'
            )
            assert response.status == 200 and response.header(b"content-type") == b"text/plain"
            assert await response.read() == b"pong"
            response.close()
        await listening.stop(upstream)

    run(scenario)
    assert connections == 1 and len(seen) == 3
    head, body = seen[0]
    assert head.startswith(b"POST /prefix/api/chat HTTP/1.1\r\nhost: 127.0.0.1:")
    assert b"x-request-id: r1\r\n" in head and b"content-length: 7\r\n" in head and body == b'{"a":1}'


def test_a_kept_alive_connection_the_node_dropped_is_replaced_once() -> None:
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await read_request(reader)
        writer.write(answer(b"first" if connections == 1 else b"fresh"))
        await writer.drain()
        if connections == 1:  # take the next request, then hang up without answering (a stale keep-alive)
            await read_request(reader)
        writer.close()

    async def scenario() -> None:
        listening, url = await server(handler)
        upstream = Upstream()
        for expected in (b"first", b"fresh"):
            response = await upstream.request(url, b"POST", b"/x", [], b"{}")
            assert await response.read() == expected
            response.close()
        await listening.stop(upstream)

    run(scenario)
    assert connections == 2


def test_chunked_answers_are_decoded_and_a_slow_reader_pauses_the_node() -> None:
    piece = b"x" * 65536
    pieces = 64  # 4 MiB, well over the high-water mark

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for _ in range(pieces):
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def scenario() -> None:
        listening, url = await server(handler)
        upstream = Upstream(idle_timeout=0.2)  # a pause for a slow reader is not the node's silence
        response = await upstream.request(url, b"POST", b"/x", [], b"")
        await asyncio.sleep(0.5)  # the node writes on while nobody reads
        assert response._paused and response._buffered <= 2 * 1024 * 1024
        total = 0
        while (chunk := await response.next_chunk()) is not None:
            assert set(chunk) == {ord("x")}
            total += len(chunk)
        assert total == len(piece) * pieces
        response.close()
        await listening.stop(upstream)

    run(scenario)


def test_an_answer_cut_off_raises_broken() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await writer.drain()
        writer.close()

    async def scenario() -> None:
        listening, url = await server(handler)
        upstream = Upstream()
        response = await upstream.request(url, b"POST", b"/x", [], b"")
        assert await response.next_chunk() == b"hello"
        with pytest.raises(Broken) as broken:
            await response.next_chunk()
        assert broken.value.answered
        response.close()
        await listening.stop(upstream)

    run(scenario)


def test_nothing_listening_is_connect_failed_and_garbage_is_broken() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH\r\n\r\n")
        await writer.drain()

    async def scenario() -> None:
        upstream = Upstream(connect_timeout=2)
        with pytest.raises(ConnectFailed, match="cannot connect"):
            await upstream.request(f"http://127.0.0.1:{free_port()}", b"POST", b"/x", [], b"")
        listening, url = await server(handler)
        with pytest.raises(Broken, match="not a valid HTTP answer"):
            await upstream.request(url, b"POST", b"/x", [], b"")
        await listening.stop(upstream)

    run(scenario)


def test_a_cancelled_request_closes_its_connection() -> None:
    closed = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await reader.read()  # until the client closes
        closed.set()

    async def scenario() -> None:
        listening, url = await server(handler)
        upstream = Upstream()
        waiting = asyncio.ensure_future(upstream.request(url, b"POST", b"/x", [], b""))
        await asyncio.sleep(0.2)
        waiting.cancel()
        await asyncio.wait_for(closed.wait(), 5)
        await listening.stop(upstream)

    run(scenario)


def test_a_node_that_says_nothing_times_out_once_without_a_second_try() -> None:
    connections = 0
    gone = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await read_request(reader)
        writer.write(answer(b"first"))
        await writer.drain()
        await read_request(reader)  # the next request on the kept-alive connection: no answer
        await reader.read()  # until the gateway hangs up
        gone.set()

    async def scenario() -> None:
        listening, url = await server(handler)
        upstream = Upstream(first_byte_timeout=0.3)
        response = await upstream.request(url, b"POST", b"/x", [], b"")
        assert await response.read() == b"first"
        response.close()
        with pytest.raises(TimedOut, match=r"no answer from the node within 0\.3s") as timed_out:
            await upstream.request(url, b"POST", b"/x", [], b"")
        assert timed_out.value.first_byte and not timed_out.value.answered
        await asyncio.wait_for(gone.wait(), 5)  # the connection was closed: the node knows
        await listening.stop(upstream)

    run(scenario)
    assert connections == 1  # a node that said nothing is not asked again on a new connection


def test_the_first_byte_deadline_covers_the_body_and_then_the_idle_one_takes_over() -> None:
    async def headers_only(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")  # a stream, then nothing
        await writer.drain()
        await reader.read()

    async def stalls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for piece in (b"one", b"two"):
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
            await asyncio.sleep(0.2)  # slower than nothing, faster than the idle timeout
        await reader.read()

    async def scenario() -> None:
        upstream = Upstream(first_byte_timeout=0.4, idle_timeout=0.6)
        listening, url = await server(headers_only)
        response = await upstream.request(url, b"POST", b"/x", [], b"")
        assert response.status == 200
        with pytest.raises(TimedOut) as timed_out:
            await response.next_chunk()
        assert timed_out.value.first_byte and timed_out.value.answered
        response.close()
        await listening.stop(upstream)

        listening, url = await server(stalls)
        response = await upstream.request(url, b"POST", b"/x", [], b"")
        assert [await response.next_chunk(), await response.next_chunk()] == [b"one", b"two"]
        with pytest.raises(TimedOut, match=r"sent nothing for 0\.6s in the middle of its answer") as cut:
            await response.next_chunk()
        assert not cut.value.first_byte and cut.value.answered
        response.close()
        await listening.stop(upstream)

    run(scenario)
