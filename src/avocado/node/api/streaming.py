"""Streaming helpers: start a stream eagerly, then send NDJSON (Ollama) or SSE (OpenAI).

A stream is *primed*: its first item is produced before the response starts, so anything that
fails up front (unknown model, full queue, bad template) is a proper HTTP error, and an error
after the first byte becomes an error line in the stream, as Ollama and OpenAI do it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from avocado.node.api.errors import ClientGone, error_body, status_for

__all__ = [
    "ClientGone",
    "Collected",
    "Job",
    "ProgressReport",
    "collect",
    "dumps",
    "ndjson_response",
    "now_iso",
    "prime",
    "progress_response",
    "sse_response",
    "thread_stream",
    "unless_gone",
]

log = logging.getLogger(__name__)


_second: tuple[int, str] = (-1, "")  # the last whole second formatted, shared by every chunk in it


def now_iso() -> str:
    """RFC 3339 with microseconds and a ``Z``, as Ollama prints ``created_at``.

    Every streamed chunk carries one: the date and time are formatted once a second.
    """
    global _second
    now = time.time_ns() // 1000
    second, micro = divmod(now, 1_000_000)
    cached = _second  # one read: another thread may replace it meanwhile
    if second != cached[0]:
        cached = _second = (second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    return f"{cached[1]}.{micro:06d}Z"


# One encoder for every chunk: json.dumps with options builds a new encoder per call.
_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def dumps(value: Any) -> str:
    return _encoder.encode(value)


T = TypeVar("T")


async def _gone(request: Request) -> None:
    """Returns when the client disconnects; the request's body has been read already."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def unless_gone(request: Request, work: Awaitable[T]) -> T:
    """``work``, cancelled if the client goes away first (:class:`ClientGone`): a queued or running
    generation stops and frees its slot. A streamed response notices on its own (Starlette listens
    for the disconnect while it sends), but not before it starts, nor an answer sent whole."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(_gone(request))
    try:
        await asyncio.wait((task, watch), return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if task.cancelled():
        raise ClientGone("the client closed the connection")
    return task.result()


async def prime(stream: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """Run ``stream`` to its first item now; errors before it propagate to the caller."""
    try:
        first = await anext(stream)
    except StopAsyncIteration:
        first = None
        empty = True
    else:
        empty = False

    async def rest() -> AsyncIterator[Any]:
        try:
            if not empty:
                yield first
                async for item in stream:
                    yield item
        finally:
            await stream.aclose()  # type: ignore[attr-defined]

    return rest()


@dataclass(slots=True)
class Collected:
    """A whole stream of Ollama chunks, gathered for a non-streaming answer."""

    text: str
    tool_calls: list[dict[str, Any]]
    final: dict[str, Any]


async def collect(stream: AsyncIterator[dict[str, Any]]) -> Collected:
    """Join the text (``response`` or ``message.content``) and tool calls of generate/chat chunks."""
    parts: list[str] = []
    calls: list[dict[str, Any]] = []
    final: dict[str, Any] = {}
    async for item in stream:
        if item["done"]:
            final = item
        elif "message" in item:
            parts.append(item["message"]["content"])
            calls.extend(item["message"].get("tool_calls", []))
        else:
            parts.append(item["response"])
    return Collected("".join(parts), calls, final)


# A blocking job that reports progress dicts, and may be asked to stop.
ProgressReport = Callable[[dict[str, Any]], None]
Job = Callable[[ProgressReport, threading.Event], None]


async def thread_stream(job: Job) -> AsyncGenerator[dict[str, Any]]:
    """Run ``job`` in a worker thread and yield what it reports; its error ends the stream."""
    loop = asyncio.get_running_loop()
    updates: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
    cancel = threading.Event()

    def progress(item: dict[str, Any]) -> None:
        loop.call_soon_threadsafe(updates.put_nowait, item)

    async def work() -> None:
        try:
            await asyncio.to_thread(job, progress, cancel)
        finally:
            loop.call_soon_threadsafe(updates.put_nowait, None)

    def settle(finished: asyncio.Task[None]) -> None:  # an abandoned transfer's error is only logged
        if not finished.cancelled() and (exc := finished.exception()) is not None:
            log.info("transfer ended: %s", exc)

    task = asyncio.create_task(work())
    try:
        while (item := await updates.get()) is not None:
            yield item
    finally:
        if not task.done():
            cancel.set()
            task.add_done_callback(settle)
    await task  # raises the job's error, if any


async def progress_response(
    stream: AsyncIterator[dict[str, Any]], streaming: bool | None, request: Request
) -> Response:
    primed = await prime(stream)
    if streaming is not False:
        return ndjson_response(primed, request.url.path)
    last: dict[str, Any] = {}
    async for item in primed:
        last = item
    return JSONResponse(last)


def _error_text(path: str, exc: BaseException) -> str:
    status, message = status_for(exc)
    if status >= 500 and message == "internal server error":
        log.error("stream failed", exc_info=exc)
    return dumps(error_body(path, status, message))


def ndjson_response(stream: AsyncIterator[dict[str, Any]], path: str) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        try:
            async for item in stream:
                yield (dumps(item) + "\n").encode()
        except Exception as exc:
            yield (_error_text(path, exc) + "\n").encode()

    return StreamingResponse(body(), media_type="application/x-ndjson")


def sse_response(stream: AsyncIterator[dict[str, Any]], path: str) -> StreamingResponse:
    """Server-sent events ending with ``data: [DONE]``, as OpenAI streams."""

    async def body() -> AsyncIterator[bytes]:
        try:
            async for item in stream:
                yield f"data: {dumps(item)}\n\n".encode()
        except Exception as exc:
            yield f"data: {_error_text(path, exc)}\n\n".encode()
        yield b"data: [DONE]\n\n"

    return StreamingResponse(body(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
