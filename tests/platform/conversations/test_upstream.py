"""The platform's chat client against model servers that misbehave in ways a real node will not on
demand: a line cut across reads, a body that stops before ``done``, a line that is not JSON, an error
line, a refused credential, nobody listening. Each is a plain HTTP server on loopback answering bytes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Sequence

import pytest

from avocado.platform.conversations.upstream import DRAIN, ChatUpstream, Ending, UpstreamFailure
from tests.support import free_port


def _line(content: str, done: bool = False) -> bytes:
    chunk = {"message": {"role": "assistant", "content": content}, "done": done}
    if done:
        chunk |= {"done_reason": "stop", "prompt_eval_count": 5, "eval_count": 2}
    return json.dumps(chunk).encode() + b"\n"


def _chunked(parts: Sequence[bytes], end: bool = True) -> list[bytes]:
    """The HTTP head and each part as a chunk of a chunked body (ended, unless ``end`` is false)."""
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\ntransfer-encoding: chunked\r\n"
    frames = [head + b"x-avocado-node: n1\r\n\r\n"]
    frames += [b"%x\r\n%s\r\n" % (len(part), part) for part in parts]
    if end:
        frames.append(b"0\r\n\r\n")
    return frames


class Server:
    """A server that answers every request with ``frames``, ``pause`` seconds apart (then closes the
    connection when they do not end the body); it records the requests and counts connections."""

    def __init__(self, frames: list[bytes], pause: float = 0.01) -> None:
        self.frames, self.pause = frames, pause
        self.requests: list[bytes] = []
        self.connections = 0
        self.writers: list[asyncio.StreamWriter] = []

    async def answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                sizes = [line.split(b":")[1] for line in head.split(b"\r\n") if b"content-length" in line]
                self.requests.append(head + await reader.readexactly(int(sizes[0])))
                for frame in self.frames:
                    writer.write(frame)
                    await writer.drain()
                    await asyncio.sleep(self.pause)
                if not self.frames[-1].endswith(b"0\r\n\r\n"):
                    break
        writer.close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[ChatUpstream]:
        server = await asyncio.start_server(self.answer, "127.0.0.1", 0)
        upstream = ChatUpstream(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", "secret")
        try:
            yield upstream
        finally:
            await upstream.aclose()
            for writer in self.writers:
                writer.close()
            server.close()
            await server.wait_closed()


async def _collect(stream: AsyncIterator[str | Ending]) -> tuple[str, Ending | None]:
    text, ending = "", None
    async for piece in stream:
        if isinstance(piece, Ending):
            ending = piece
        else:
            text += piece
    return text, ending


def _ask(upstream: ChatUpstream) -> AsyncIterator[str | Ending]:
    return upstream.stream("m", [{"role": "user", "content": "hi"}], {}, "u1")


def _run(
    frames: list[bytes], times: int = 1, gap: float = 0.0
) -> tuple[list[tuple[str, Ending | None]], Server]:
    server = Server(frames)

    async def main() -> list[tuple[str, Ending | None]]:
        results = []
        async with server.running() as upstream:
            for _ in range(times):
                results.append(await _collect(_ask(upstream)))
                await asyncio.sleep(gap)
        return results

    return asyncio.run(main()), server


def test_lines_split_across_reads_make_the_answer_and_the_connection_serves_the_next() -> None:
    whole = _line("Hel") + _line("lo") + _line("", done=True)
    results, server = _run(_chunked([whole[:10], whole[10:45], whole[45:]]), times=2, gap=0.1)
    for text, ending in results:
        assert text == "Hello"
        assert ending is not None and ending.done_reason == "stop"
        assert ending.usage["prompt_tokens"] == 5 and ending.usage["completion_tokens"] == 2
        assert ending.usage["node"] == "n1"
    assert len(server.requests) == 2 and server.connections == 1  # the end was read aside: kept alive
    first = server.requests[0]
    assert b"authorization: Bearer secret" in first and b"x-avocado-user: u1" in first.lower()
    assert json.loads(first.split(b"\r\n\r\n", 1)[1])["stream"] is True


def test_text_on_the_done_line_is_kept() -> None:
    chunk = {"message": {"role": "assistant", "content": " world"}, "done": True, "eval_count": 2}
    results, _ = _run(_chunked([_line("Hello") + json.dumps(chunk).encode() + b"\n"]))
    assert results[0][0] == "Hello world" and results[0][1] is not None


def test_an_answer_ends_at_its_done_line_though_the_body_ends_late() -> None:
    """The body's end is read aside (for up to DRAIN seconds): the answer does not wait for it."""
    server = Server(_chunked([_line("Hi"), _line("", done=True)]), pause=DRAIN + 0.5)

    async def main() -> tuple[float, str]:
        async with server.running() as upstream:
            stream = _ask(upstream)
            text = ""
            async for piece in stream:
                if isinstance(piece, Ending):
                    started = time.perf_counter()
                    break
                text += piece
            async for _ in stream:  # nothing after the Ending
                raise AssertionError("more after the end")
            return time.perf_counter() - started, text

    waited, text = asyncio.run(main())
    assert text == "Hi" and waited < 0.2


@pytest.mark.parametrize(
    ("frames", "reason"),
    [
        (_chunked([_line("Hel")], end=False), "broke"),
        (_chunked([_line("Hel")]), "ended the answer before it was done"),
        (_chunked([b"<html>not json</html>\n"]), "something other than a chat stream"),
        (_chunked([b'{"error": "out of memory"}\n']), "the model failed: out of memory"),
        ([b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n"], "refused the platform's credential"),
        (
            [b'HTTP/1.1 404 Not Found\r\ncontent-length: 28\r\n\r\n{"error": "model not found"}'],
            "answered 404: model not found",
        ),
    ],
)
def test_a_misbehaving_server_fails_the_answer_with_a_reason(frames: list[bytes], reason: str) -> None:
    with pytest.raises(UpstreamFailure, match=reason):
        _run(frames)


def test_nobody_listening_is_a_clear_failure() -> None:
    async def main() -> None:
        upstream = ChatUpstream(f"http://127.0.0.1:{free_port()}", None)
        try:
            await _collect(upstream.stream("m", [], {}, "u1"))
        finally:
            await upstream.aclose()

    with pytest.raises(UpstreamFailure, match="cannot be reached"):
        asyncio.run(main())


def test_a_whole_answer_at_once() -> None:
    body = json.dumps({"message": {"role": "assistant", "content": "A title"}, "done": True}).encode()
    server = Server([b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)])

    async def main() -> str:
        async with server.running() as upstream:
            return await upstream.complete("m", [{"role": "user", "content": "hi"}], {}, "u1")

    assert asyncio.run(main()) == "A title"
    assert json.loads(server.requests[0].split(b"\r\n\r\n", 1)[1])["stream"] is False


def test_a_closed_client_refuses_new_answers() -> None:
    async def main() -> None:
        upstream = ChatUpstream(f"http://127.0.0.1:{free_port()}", None)
        await upstream.aclose()
        await _collect(_ask(upstream))

    with pytest.raises(UpstreamFailure, match="shutting down"):
        asyncio.run(main())
