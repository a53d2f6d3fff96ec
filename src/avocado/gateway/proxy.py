"""The request path: admit, route by model, forward to a node, stream the answer back, report the outcome.

A pure ASGI app, kept lean because every request goes through it: the body is read once, parsed with
``json.loads`` only to find ``model``, and forwarded as the client sent it over the pool's shared
keep-alive client. The node's answer is held back only until its first chunk arrives, so a node that
fails before that (connection refused or dropped, 5xx, breaker open) is replaced by another that has
the model, at most ``Router.max_attempts`` nodes in all, without the client noticing. From then on
chunks are passed on as they come (NDJSON and server-sent events unbuffered); if the node breaks off
the stream, it ends with an error line in the stream's own format, as the node ends its streams.

A client that disconnects cancels the upstream request (the connection to the node is closed, and the
node stops generating). Token counts are read from the end of the answer only (the last chunks), with
no JSON parsing of the stream, and reported with everything else in an :class:`Outcome` to the
admission's ``finish`` and to every observer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from avocado.gateway.errors import is_openai_path, send_error, stream_error_line
from avocado.gateway.hooks import Admission, Outcome, Refused, Ticket
from avocado.gateway.nodes import Node, NodePool, normalize_model
from avocado.gateway.routing import Router
from avocado.gateway.upstream import UpstreamError, UpstreamResponse

__all__ = [
    "MODEL_ROUTES",
    "BadBody",
    "GatewayProxy",
    "Observer",
    "RequestIdMiddleware",
    "model_of",
    "request_id_of",
    "usage_of",
]

log = logging.getLogger(__name__)
request_log = logging.getLogger("avocado.request")

Observer = Callable[[Outcome], None]

# The routes a node serves per model: POST, routed by the body's ``model``.
MODEL_ROUTES = (
    "/api/generate",
    "/api/chat",
    "/api/embed",
    "/api/embeddings",
    "/api/show",
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
)
MAX_BODY = 64 * 1024 * 1024  # images in chat requests are base64 in the body
TAIL_CHUNKS = 16  # chunks kept (by reference) to read token counts from at the end
TAIL_BYTES = 256 * 1024

# Request headers a node gets from the client; the rest (the client's key above all) stays here.
_FORWARDED = frozenset({b"content-type", b"accept", b"user-agent", b"traceparent", b"tracestate"})
# Response headers that describe the node's connection or its own policies, not the answer.
_DROPPED = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"transfer-encoding",
        b"te",
        b"trailer",
        b"upgrade",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"date",
        b"server",
        b"vary",
        b"x-request-id",
    }
)
_SANE_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")
_OLLAMA_COUNTS = (re.compile(rb'"prompt_eval_count":\s*(\d+)'), re.compile(rb'"eval_count":\s*(\d+)'))
_OPENAI_COUNTS = (re.compile(rb'"prompt_tokens":\s*(\d+)'), re.compile(rb'"completion_tokens":\s*(\d+)'))


def request_id_of(scope: Scope) -> str:
    """The request's id: set by :class:`RequestIdMiddleware`, else the client's sane one, else a new one."""
    state = scope.get("state")
    if state is not None and (known := state.get("request_id")):
        return str(known)
    for name, value in scope["headers"]:
        if name == b"x-request-id" and _SANE_ID.match(value):
            return str(value.decode())
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Gives every request an id (``scope["state"]["request_id"]``) and every response ``X-Request-ID``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        await self.app(scope, receive, send_with_id)


class BadBody(ValueError):
    """A request body the node would refuse with 400; the message is the node's."""


def model_of(path: str, body: bytes) -> str:
    """The ``model`` a request body names (or ``name``, which older Ollama clients send)."""
    if not body.strip():
        raise BadBody("Field required")
    try:
        data = json.loads(body)
    except ValueError:
        raise BadBody("invalid JSON in request body") from None
    if not isinstance(data, dict):
        raise BadBody("Input should be a valid dictionary or object to extract fields from")
    model = data.get("model")
    if not model and not is_openai_path(path) and isinstance(data.get("name"), str):
        model = data["name"] or model
    if model is None:
        raise BadBody("model: Field required" if is_openai_path(path) else "model is required")
    if not isinstance(model, str):
        raise BadBody("model: Input should be a valid string")
    if not model:
        raise BadBody("model is required")
    return model


def usage_of(tail: bytes, openai: bool) -> tuple[int, int]:
    """Prompt and generated tokens: the last counters in ``tail`` (the end of an answer), or zeros."""
    counts = []
    for pattern in _OPENAI_COUNTS if openai else _OLLAMA_COUNTS:
        value = 0
        for match in pattern.finditer(tail):
            value = int(match.group(1))
        counts.append(value)
    return counts[0], counts[1]


@dataclass(slots=True)
class _Exchange:
    """One request's state on its way through the gateway."""

    method: str
    path: str
    request_id: str
    started: float
    body: bytes = b""
    model: str | None = None  # as the client wrote it
    name: str = ""  # normalized, as nodes list it
    node: Node | None = None
    status: int = 500
    responded: bool = False  # the response has started
    streamed: bool = False
    ttft: float | None = None
    attempts: int = 0
    error: str | None = None
    cancelled: bool = False
    finished: bool = False  # the last byte is on its way: a disconnect now is the normal end
    tokens: tuple[int, int] = (0, 0)

    def outcome(self) -> Outcome:
        return Outcome(
            request_id=self.request_id,
            model=self.model,
            node=self.node.name if self.node is not None else None,
            status=self.status,
            streamed=self.streamed,
            latency_s=time.perf_counter() - self.started,
            ttft_s=self.ttft,
            tokens_in=self.tokens[0],
            tokens_out=self.tokens[1],
            error=self.error,
            attempts=max(self.attempts, 1),
        )


@dataclass(slots=True)
class _Failure:
    """Why one node did not answer: its own error response (relayed if no other node does), or a message."""

    kind: str  # "upstream" (connection, timeout, 5xx) or "not_found" (the node lacks the model)
    message: str
    status: int = 502
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes | None = None


class GatewayProxy:
    """The ASGI app behind :data:`MODEL_ROUTES`."""

    def __init__(
        self, pool: NodePool, router: Router, admission: Admission, observers: Sequence[Observer] = ()
    ) -> None:
        self.pool = pool
        self.router = router
        self.admission = admission
        self.observers = tuple(observers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ex = _Exchange(scope["method"], scope["path"], request_id_of(scope), time.perf_counter())
        body = await _read_body(receive)
        if body is None:
            return  # the client left before it finished sending
        ex.body = body
        problem: tuple[int, str] | None = None
        if len(body) > MAX_BODY:
            problem = (413, f"request body over {MAX_BODY // (1024 * 1024)} MB")
        else:
            try:
                ex.model = model_of(ex.path, body)
            except BadBody as bad:
                problem = (400, str(bad))
        try:
            ticket = await self.admission.admit(Request(scope, _replay(body)), ex.model)
        except Refused as refused:
            await self._error(ex, send, refused.status, refused.message, "refused", refused.retry_after)
            await self._report(ex, None)
            return
        try:
            await self._handle(ex, scope, receive, send, problem, ticket)
        except Exception:
            log.exception("gateway: request %s failed", ex.request_id)
            if not ex.responded:
                await self._error(ex, send, 500, "internal server error", "internal")
            ex.error = ex.error or "internal"
        finally:
            await self._report(ex, ticket)

    async def _handle(
        self,
        ex: _Exchange,
        scope: Scope,
        receive: Receive,
        send: Send,
        problem: tuple[int, str] | None,
        ticket: Ticket,
    ) -> None:
        if problem is not None or ex.model is None:
            status, message = problem or (400, "model is required")
            await self._error(ex, send, status, message, "bad_request")
            return
        model = ex.model
        try:
            ex.name = normalize_model(model)
        except ValueError as exc:
            await self._error(ex, send, 400, str(exc), "bad_request")
            return
        if not (ticket.allows(model) or ticket.allows(ex.name)):
            await self._error(ex, send, 403, f"this API key may not use model '{model}'", "forbidden")
            return
        await _until_disconnected(self._forward(ex, scope, send), receive, ex)
        if ex.cancelled:
            ex.error = "cancelled"
            if not ex.responded:
                ex.status = 499  # client closed the request (nginx's code): nothing was sent

    async def _forward(self, ex: _Exchange, scope: Scope, send: Send) -> None:
        """Try nodes that have the model until one answers; otherwise say why none did."""
        headers = [(key, value) for key, value in scope["headers"] if key in _FORWARDED]
        headers.append((b"x-request-id", ex.request_id.encode()))
        tried: list[Node] = []
        failure: _Failure | None = None
        while len(tried) < self.router.max_attempts:
            node = self.router.choose(ex.name, tried)
            if node is None:
                break
            tried.append(node)
            ex.attempts = len(tried)
            failure = await self._attempt(ex, node, headers, send)
            if failure is None:
                return
        if failure is None:
            status, message = self.router.refusal(ex.name, ex.model or ex.name)
            await self._error(ex, send, status, message, "no_node")
        elif failure.body is not None:
            await self._relay_failure(ex, send, failure)
        else:
            await self._error(ex, send, 502, f"no node could answer: {failure.message}", failure.kind)

    async def _attempt(
        self, ex: _Exchange, node: Node, headers: list[tuple[bytes, bytes]], send: Send
    ) -> _Failure | None:
        """Send the request to ``node``; ``None`` once its answer is on its way to the client."""
        self.pool.begin(node)
        verdict = False
        response: UpstreamResponse | None = None
        try:
            sent = time.perf_counter()
            try:
                response = await self.pool.upstream.request(
                    node.url, b"POST", ex.path.encode(), [*headers, *node.auth], ex.body
                )
                failure = await self._refused_by(node, response, ex.name)
                if failure is None:
                    first = await response.next_chunk()
            except UpstreamError as exc:
                verdict = True
                return self._failed(ex, node, f"{node.name}: {exc}")
            verdict = True
            if failure is not None:
                return failure
            node.succeeded(time.perf_counter() - sent)
            await self._relay(ex, node, response, first, send)
            return None
        finally:
            if response is not None:
                response.close()
            if not verdict:
                node.breaker.release()
            self.pool.end(node)

    async def _refused_by(self, node: Node, response: UpstreamResponse, name: str) -> _Failure | None:
        """A 5xx (the node is failing) or a 404 for the model (it lost it): worth trying another node."""
        status = response.status
        if status < 500 and status != 404:
            return None
        data = await response.read()
        headers = _response_headers(response.headers)
        if status == 404:  # the node's models changed since it was last checked
            node.forget_model(name)
            node.breaker.success()
            return _Failure("not_found", f"{node.name} does not have the model", status, headers, data)
        message = f"{node.name}: HTTP {status}"
        node.failed(message)
        log.warning("gateway: node %s answered HTTP %d", node.name, status)
        return _Failure("upstream", message, status, headers, data)

    def _failed(self, ex: _Exchange, node: Node, message: str) -> _Failure:
        node.failed(message)
        log.warning("gateway: request %s failed on node %s: %s", ex.request_id, node.name, message)
        return _Failure("upstream", message)

    async def _relay(
        self, ex: _Exchange, node: Node, response: UpstreamResponse, first: bytes | None, send: Send
    ) -> None:
        """The node's answer to the client, chunk by chunk as it arrives."""
        ex.node, ex.status, ex.responded = node, response.status, True
        kind = response.header(b"content-type") or b""
        sse = kind.startswith(b"text/event-stream")
        ex.streamed = sse or kind.startswith(b"application/x-ndjson")
        headers = _response_headers(response.headers)
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        tail: deque[bytes] = deque(maxlen=TAIL_CHUNKS)
        if first is not None:
            ex.ttft = time.perf_counter() - ex.started
            tail.append(first)
            await send({"type": "http.response.body", "body": first, "more_body": True})
            try:
                while (chunk := await response.next_chunk()) is not None:
                    tail.append(chunk)
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except UpstreamError as exc:
                await self._broken(ex, node, exc, tail, sse, send)
                return
        ex.finished = True
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        if response.status == 200:
            ex.tokens = usage_of(b"".join(tail)[-TAIL_BYTES:], is_openai_path(ex.path))

    async def _broken(
        self, ex: _Exchange, node: Node, exc: Exception, tail: deque[bytes], sse: bool, send: Send
    ) -> None:
        """The node broke off its answer after the client got part of it."""
        message = f"{node.name}: {exc}"
        node.failed(message)
        ex.error = "upstream"
        log.warning("gateway: node %s broke off request %s: %s", node.name, ex.request_id, message)
        if not ex.streamed:
            return  # unfinished: the server cuts the connection, so the client sees a broken body
        separator = b"\n\n" if sse else b"\n"
        gap = b"" if tail and tail[-1].endswith(separator) else separator
        line = stream_error_line(ex.path, sse, 502, "the node serving this request failed; the answer is cut")
        ex.finished = True
        await send({"type": "http.response.body", "body": gap + line, "more_body": False})

    async def _relay_failure(self, ex: _Exchange, send: Send, failure: _Failure) -> None:
        """No node answered well: the last one's own error (a 5xx, or 404 when none has the model)."""
        assert failure.body is not None
        ex.status, ex.responded, ex.finished = failure.status, True, True
        ex.error = failure.kind
        headers = [(k, v) for k, v in failure.headers if k.lower() != b"content-length"]
        headers.append((b"content-length", b"%d" % len(failure.body)))
        await send({"type": "http.response.start", "status": failure.status, "headers": headers})
        await send({"type": "http.response.body", "body": failure.body, "more_body": False})

    async def _error(
        self,
        ex: _Exchange,
        send: Send,
        status: int,
        message: str,
        kind: str,
        retry_after: float | None = None,
    ) -> None:
        ex.status, ex.error, ex.responded, ex.finished = status, kind, True, True
        await send_error(send, ex.path, status, message, retry_after)

    async def _report(self, ex: _Exchange, ticket: Ticket | None) -> None:
        """The outcome to the admission (when it admitted the request), the observers and the log."""
        outcome = ex.outcome()
        if ticket is not None:
            try:
                await self.admission.finish(ticket, outcome)
            except Exception:
                log.exception("gateway: admission.finish failed for request %s", ex.request_id)
        for observer in self.observers:
            try:
                observer(outcome)
            except Exception:
                log.exception("gateway: an outcome observer failed")
        if request_log.isEnabledFor(logging.INFO):
            fields = {
                "method": ex.method,
                "path": ex.path,
                "model": outcome.model,
                "node": outcome.node,
                "status": outcome.status,
                "duration_ms": round(outcome.latency_s * 1000, 2),
                "attempts": outcome.attempts,
                "request_id": ex.request_id,
            }
            if outcome.error:
                fields["error"] = outcome.error
            request_log.info("request", extra={"fields": fields})


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body; ``None`` if the client disconnected first."""
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
        if size > MAX_BODY + 1:
            return b"".join(parts)[: MAX_BODY + 1]  # enough to tell it is too big
        if not message.get("more_body", False):
            return b"".join(parts)


def _replay(body: bytes) -> Receive:
    """A ``receive`` for the Request handed to the admission: the body already read, once."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> Message:
        return pending.pop() if pending else {"type": "http.disconnect"}

    return receive


async def _until_disconnected(forward: Coroutine[Any, Any, None], receive: Receive, ex: _Exchange) -> None:
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


def _response_headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [
        (name, value)
        for name, value in raw
        if (lowered := name.lower()) not in _DROPPED and not lowered.startswith(b"access-control-")
    ]
