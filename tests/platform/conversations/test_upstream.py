"""The platform's chat client against model servers that misbehave in ways a real node will not on
demand: a line cut across reads, a body that stops before ``done``, a line that is not JSON, an error
line, a refused credential, nobody listening. Each is a plain HTTP server on loopback answering bytes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence

import pytest

from avocado.platform.conversations.upstream import ChatUpstream, Ending, UpstreamFailure
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


async def _serve(frames: list[bytes], requests: list[bytes]) -> tuple[asyncio.Server, str]:
    """A server that answers every request with ``frames`` (then closes when they do not end the body)."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(
                next(line.split(b":")[1] for line in head.split(b"\r\n") if b"content-length" in line)
            )
            requests.append(head + await reader.readexactly(length))
            for frame in frames:
                writer.write(frame)
                await writer.drain()
                await asyncio.sleep(0.01)
            if not frames[-1].endswith(b"0\r\n\r\n"):
                writer.close()
                return

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


async def _collect(stream: AsyncIterator[str | Ending]) -> tuple[str, Ending | None]:
    text, ending = "", None
    async for piece in stream:
        if isinstance(piece, Ending):
            ending = piece
        else:
            text += piece
    return text, ending


def _run(frames: list[bytes], times: int = 1) -> tuple[list[tuple[str, Ending | None]], list[bytes]]:
    requests: list[bytes] = []

    async def main() -> list[tuple[str, Ending | None]]:
        server, url = await _serve(frames, requests)
        upstream = ChatUpstream(url, "secret")
        try:
            return [
                await _collect(upstream.stream("m", [{"role": "user", "content": "hi"}], {}, "u1"))
                for _ in range(times)
            ]
        finally:
            await upstream.aclose()
            server.close()

    return asyncio.run(main()), requests


def test_lines_split_across_reads_make_the_answer_one_request_after_another() -> None:
    whole = _line("Hel") + _line("lo") + _line("", done=True)
    results, requests = _run(_chunked([whole[:10], whole[10:45], whole[45:]]), times=2)
    for text, ending in results:
        assert text == "Hello"
        assert ending is not None and ending.done_reason == "stop"
        assert ending.usage["prompt_tokens"] == 5 and ending.usage["completion_tokens"] == 2
        assert ending.usage["node"] == "n1"
    assert len(requests) == 2
    assert b"authorization: Bearer secret" in requests[0] and b"x-avocado-user: u1" in requests[0].lower()
    assert json.loads(requests[0].split(b"\r\n\r\n", 1)[1])["stream"] is True


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
    frames = [b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)]
    requests: list[bytes] = []

    async def main() -> str:
        server, url = await _serve(frames, requests)
        upstream = ChatUpstream(url, None)
        try:
            return await upstream.complete("m", [{"role": "user", "content": "hi"}], {}, "u1")
        finally:
            await upstream.aclose()
            server.close()

    assert asyncio.run(main()) == "A title"
    assert json.loads(requests[0].split(b"\r\n\r\n", 1)[1])["stream"] is False
