"""Chat with a model upstream (our gateway, a node or a plain Ollama) over Ollama's ``/api/chat``.

The platform calls with its service credential and names the user in ``X-Avocado-User`` so usage is
theirs; our gateway answers which node served in ``X-Avocado-Node``. Answers stream as NDJSON: each
piece of text as it comes, then the model's counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from avocado.lean_http import ConnectFailed, Upstream, UpstreamError, UpstreamResponse
from avocado.platform.catalog.service import USER_HEADER
from avocado.redact import redact_url

__all__ = ["NODE_HEADER", "ChatUpstream", "Ending", "UpstreamFailure"]

log = logging.getLogger(__name__)

NODE_HEADER = "x-avocado-node"
DRAIN = 1.0  # seconds to wait for the end of a chat stream after its last line


class UpstreamFailure(Exception):
    """The model server failed the request; the message says why, for the user."""


@dataclass(frozen=True, slots=True)
class Ending:
    """How an answer ended: the model's counts and timings, and why it stopped."""

    usage: dict[str, Any]
    done_reason: str | None


def _error_of(body: bytes, status: int) -> str:
    try:
        detail = json.loads(body).get("error")
    except (ValueError, AttributeError):
        detail = None
    return f"the model server answered {status}" + (f": {detail}" if isinstance(detail, str) else "")


class ChatUpstream:
    def __init__(self, base_url: str, api_key: str | None, *, read_timeout: float = 600.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.where = redact_url(self.base_url)
        # The gateway's lean client (httptools, no anyio layers): a chat's stream is read chunk by
        # chunk while hundreds of others are, and httpx's per-chunk and per-request cost would show
        self._http = Upstream(
            connect_timeout=10.0, first_byte_timeout=read_timeout, idle_timeout=read_timeout
        )
        self._headers = [(b"content-type", b"application/json")]
        self._draining: set[asyncio.Task[None]] = set()
        self._closed = False
        if api_key:
            self._headers.append((b"authorization", f"Bearer {api_key}".encode()))

    def _body(
        self, model: str, messages: Sequence[Mapping[str, str]], options: Mapping[str, Any], stream: bool
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model, "messages": list(messages), "stream": stream}
        chosen = {name: value for name, value in options.items() if value is not None}
        if chosen:
            body["options"] = chosen
        return body

    async def stream(
        self,
        model: str,
        messages: Sequence[Mapping[str, str]],
        options: Mapping[str, Any],
        user_id: str,
    ) -> AsyncIterator[str | Ending]:
        """The answer's text piece by piece, then one :class:`Ending`; :class:`UpstreamFailure` on error."""
        started = time.perf_counter()
        response = await self._send(model, messages, options, user_id, stream=True)
        handed = False  # to the task that reads the end of the body
        try:
            if response.status in (401, 403):
                raise UpstreamFailure(f"the model server at {self.where} refused the platform's credential")
            if response.status != 200:
                raise UpstreamFailure(_error_of(await response.read(), response.status))
            node = response.header(NODE_HEADER.encode())
            reader = _Lines(started, node.decode() if node else None)
            while (chunk := await response.next_chunk()) is not None:
                for piece in reader.feed(chunk):
                    if isinstance(piece, Ending):
                        # The end of the body may come a moment after the last line: read it aside,
                        # so the answer ends now and the connection still serves the next one
                        self._drain_aside(response)
                        handed = True
                    yield piece
                    if handed:
                        return
            for piece in reader.feed(b"\n"):
                yield piece
                if isinstance(piece, Ending):
                    return
            raise UpstreamFailure("the model server ended the answer before it was done")
        except UpstreamError as exc:
            log.warning("model server %s: %s", self.where, exc)
            raise UpstreamFailure(f"the connection to the model server broke: {exc}") from None
        finally:
            if not handed:
                response.close()

    def _drain_aside(self, response: UpstreamResponse) -> None:
        task = asyncio.create_task(_drain(response), name="chat-drain")
        self._draining.add(task)
        task.add_done_callback(self._draining.discard)

    async def _send(
        self,
        model: str,
        messages: Sequence[Mapping[str, str]],
        options: Mapping[str, Any],
        user_id: str,
        *,
        stream: bool,
    ) -> UpstreamResponse:
        if self._closed:
            raise UpstreamFailure("the platform is shutting down")
        body = json.dumps(self._body(model, messages, options, stream)).encode()
        headers = [*self._headers, (USER_HEADER.encode(), user_id.encode())]
        try:
            return await self._http.request(self.base_url, b"POST", b"/api/chat", headers, body)
        except ConnectFailed as exc:
            log.warning("model server %s: %s", self.where, exc)
            raise UpstreamFailure(f"the model server at {self.where} cannot be reached") from None
        except UpstreamError as exc:
            log.warning("model server %s: %s", self.where, exc)
            raise UpstreamFailure(f"the connection to the model server broke: {exc}") from None

    async def complete(
        self, model: str, messages: Sequence[Mapping[str, str]], options: Mapping[str, Any], user_id: str
    ) -> str:
        """The whole answer at once (titles, summaries)."""
        response = await self._send(model, messages, options, user_id, stream=False)
        try:
            body = await response.read()
        except UpstreamError as exc:
            raise UpstreamFailure(f"the connection to the model server broke: {exc}") from None
        finally:
            response.close()
        if response.status != 200:
            raise UpstreamFailure(_error_of(body, response.status))
        try:
            content = json.loads(body)["message"]["content"]
        except (ValueError, KeyError, TypeError):
            raise UpstreamFailure("the model server answered something other than a chat answer") from None
        return str(content)

    async def aclose(self) -> None:
        """Close every connection; drains still running are cancelled, and later calls refused."""
        self._closed = True
        for task in list(self._draining):
            task.cancel()
        await asyncio.gather(*self._draining, return_exceptions=True)
        await self._http.aclose()


class _Lines:
    """Ollama's NDJSON chat stream, fed as it arrives: text pieces, then the :class:`Ending`."""

    def __init__(self, started: float, node: str | None) -> None:
        self.started = started
        self.first: float | None = None
        self.node = node
        self.rest = b""

    def feed(self, data: bytes) -> list[str | Ending]:
        lines = (self.rest + data).split(b"\n")
        self.rest = lines.pop()
        pieces: list[str | Ending] = []
        for line in lines:
            if line.strip():
                pieces.extend(self._pieces(line))
                if pieces and isinstance(pieces[-1], Ending):
                    break
        return pieces

    def _pieces(self, line: bytes) -> list[str | Ending]:
        """A line's text (the last line may carry some too), then the :class:`Ending` on the last."""
        try:
            chunk = json.loads(line)
        except ValueError:
            raise UpstreamFailure("the model server sent something other than a chat stream") from None
        if not isinstance(chunk, dict):
            raise UpstreamFailure("the model server sent something other than a chat stream")
        if isinstance(chunk.get("error"), str):
            raise UpstreamFailure(f"the model failed: {chunk['error']}")
        message = chunk.get("message")
        text = message.get("content") if isinstance(message, dict) else None
        pieces: list[str | Ending] = []
        if isinstance(text, str) and text:
            if self.first is None:
                self.first = time.perf_counter()
            pieces.append(text)
        if chunk.get("done"):
            pieces.append(self._ending(chunk))
        return pieces

    def _ending(self, chunk: dict[str, Any]) -> Ending:
        ended = time.perf_counter()
        return Ending(
            usage={
                "prompt_tokens": chunk.get("prompt_eval_count") or 0,
                "completion_tokens": chunk.get("eval_count") or 0,
                "ttft_ms": round(((self.first or ended) - self.started) * 1000, 1),
                "duration_ms": round((ended - self.started) * 1000, 1),
                "node": self.node,
            },
            done_reason=chunk.get("done_reason"),
        )


async def _drain(response: UpstreamResponse) -> None:
    """Read the end of an answer after its last line, so its connection serves the next one."""
    try:
        with contextlib.suppress(TimeoutError, UpstreamError):
            async with asyncio.timeout(DRAIN):
                while await response.next_chunk() is not None:
                    pass
    finally:
        response.close()
