"""The request path: admit, route by model, forward to a node, stream the answer back, report the outcome.

A pure ASGI app, kept lean because every request goes through it: the body is read once, parsed with
``json.loads`` only to find ``model``, and forwarded as the client sent it over the pool's shared
keep-alive client. The node's answer is held back only until its first chunk arrives, so a node that
fails before that is replaced by another that has the model, at most ``Router.max_attempts`` nodes in
all, without the client noticing. What counts against a node's breaker is what says the node is
failing: no connection, a broken or timed-out exchange, ``500``, ``502`` or ``504``. A busy node's
``503`` (queue full) is retried elsewhere without a mark against it; a node that refuses the gateway's
key (``401``/``403``) is marked unauthorized and skipped; any other answer, client errors above all,
goes straight back to the client. From then on chunks are passed on as they come (NDJSON and
server-sent events unbuffered); if the node breaks off the stream or stalls in it, it ends with an
error line in the stream's own format, as the node ends its streams.

A client that disconnects cancels the upstream request (the connection to the node is closed, and the
node stops generating). Token counts are read from the end of the answer only (the last chunks), with
no JSON parsing of the stream; a stream that ends before its counts (the client left, the node broke
off) counts a generated token per chunk relayed. They are reported with everything else in an
:class:`Outcome` to the admission's ``finish`` and to every observer.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from avocado.gateway.asgi import FORWARDED, read_body, replay, response_headers, until_disconnected
from avocado.gateway.errors import is_openai_path, send_error, stream_error_line
from avocado.gateway.exchange import BadBody, Exchange, Failure, model_of, usage_of
from avocado.gateway.hooks import Admission, Outcome, Refused, Ticket
from avocado.gateway.nodes import Node, NodePool, normalize_model
from avocado.gateway.routing import Router
from avocado.lean_http import TimedOut, UpstreamError, UpstreamResponse
from avocado.request_id import request_id_of
from avocado.units import format_size

__all__ = ["MAX_BODY", "MODEL_ROUTES", "GatewayProxy", "Observer"]

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
MAX_BODY = 32 * 1024 * 1024  # max_body's default: images in chat requests are base64 in the body
TAIL_CHUNKS = 16  # chunks kept (by reference) to read token counts from at the end
TAIL_BYTES = 256 * 1024
NODE_FAULTS = frozenset({500, 502, 504})  # answers that count against a node's breaker
BUSY = 503  # the node is overloaded (queue full): another may take the request
UNAUTHORIZED = frozenset({401, 403})  # the node refuses the gateway's key for it (clients' keys stay here)
CLOSE = ((b"connection", b"close"),)
_RETRIED = NODE_FAULTS | UNAUTHORIZED | {BUSY, 404}


class GatewayProxy:
    """The ASGI app behind :data:`MODEL_ROUTES`."""

    def __init__(
        self,
        pool: NodePool,
        router: Router,
        admission: Admission,
        observers: Sequence[Observer] = (),
        max_body: int = MAX_BODY,
    ) -> None:
        self.pool = pool
        self.max_body = max_body
        self.router = router
        self.admission = admission
        self.observers = tuple(observers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ex = Exchange(scope["method"], scope["path"], request_id_of(scope), time.perf_counter())
        try:
            body = await read_body(receive, self.max_body)
        except HTTPException as exc:  # RequestLimitsMiddleware's: the body came too slowly, or too big
            ex.headers = CLOSE  # what is left of the body is not read
            await self._error(ex, send, exc.status_code, str(exc.detail), "bad_request")
            await self._report(ex, None)
            return
        if body is None:
            return  # the client left before it finished sending
        ex.body = body
        problem: tuple[int, str] | None = None
        if len(body) > self.max_body:
            problem = (413, f"request body too large: at most {format_size(self.max_body)}")
        else:
            try:
                ex.model = model_of(ex.path, body)
            except BadBody as bad:
                problem = (400, str(bad))
        try:
            ticket = await self.admission.admit(Request(scope, replay(body)), ex.model)
        except Refused as refused:
            ex.headers = refused.headers
            await self._error(ex, send, refused.status, refused.message, "refused", refused.retry_after)
            await self._report(ex, None)
            return
        ex.headers = ticket.headers
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
        ex: Exchange,
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
        await until_disconnected(self._forward(ex, scope, send), receive, ex)
        if ex.cancelled:
            ex.error = "cancelled"
            if not ex.responded:
                ex.status = 499  # client closed the request (nginx's code): nothing was sent

    async def _forward(self, ex: Exchange, scope: Scope, send: Send) -> None:
        """Try nodes that have the model until one answers; otherwise say why none did."""
        headers = [(key, value) for key, value in scope["headers"] if key in FORWARDED]
        headers.append((b"x-request-id", ex.request_id.encode()))
        tried: list[Node] = []
        failure: Failure | None = None
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
            status = 504 if failure.kind == "timeout" else 502
            await self._error(ex, send, status, f"no node could answer: {failure.message}", failure.kind)

    async def _attempt(
        self, ex: Exchange, node: Node, headers: list[tuple[bytes, bytes]], send: Send
    ) -> Failure | None:
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
                return self._failed(ex, node, exc)
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

    async def _refused_by(self, node: Node, response: UpstreamResponse, name: str) -> Failure | None:
        """An answer worth trying another node for: the node is failing (500, 502, 504), busy (503),
        refuses the gateway's key (401, 403) or lost the model (404). Others go to the client as they are.
        """
        status = response.status
        if status not in _RETRIED:
            return None
        data = await response.read()
        headers = response_headers(response.headers)
        if status == 404:  # the node's models changed since it was last checked
            node.forget_model(name)
            node.breaker.success()
            return Failure("not_found", f"{node.name} does not have the model", status, headers, data)
        if status == BUSY:  # alive and answering: no mark against it (a probe ends without a verdict)
            node.breaker.release()
            log.info("gateway: node %s is busy (HTTP 503); trying another", node.name)
            return Failure("busy", f"{node.name} is busy", status, headers, data)
        if status in UNAUTHORIZED:  # the client never sees this: its own key stays with the gateway
            message = f"{node.name} refuses the gateway's key for it (HTTP {status})"
            node.breaker.release()
            node.refused_key(message)
            log.warning("gateway: node %s is unauthorized: HTTP %d to a request", node.name, status)
            return Failure("unauthorized", message)
        message = f"{node.name}: HTTP {status}"
        node.failed(message)
        log.warning("gateway: node %s answered HTTP %d", node.name, status)
        return Failure("upstream", message, status, headers, data)

    def _failed(self, ex: Exchange, node: Node, exc: UpstreamError) -> Failure:
        message = f"{node.name}: {exc}"
        node.failed(message)
        log.warning("gateway: request %s failed on node %s: %s", ex.request_id, node.name, message)
        return Failure("timeout" if isinstance(exc, TimedOut) else "upstream", message)

    async def _relay(
        self, ex: Exchange, node: Node, response: UpstreamResponse, first: bytes | None, send: Send
    ) -> None:
        """The node's answer to the client, chunk by chunk as it arrives."""
        ex.node, ex.status, ex.responded = node, response.status, True
        kind = response.header(b"content-type") or b""
        sse = kind.startswith(b"text/event-stream")
        ex.streamed = sse or kind.startswith(b"application/x-ndjson")
        headers = response_headers(response.headers)
        if ex.headers:
            headers.extend(ex.headers)
        headers.append((b"x-avocado-node", node.name.encode()))  # which node served: the platform keeps it
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        tail: deque[bytes] = deque(maxlen=TAIL_CHUNKS)
        chunks = 0
        try:
            if first is not None:
                ex.ttft = time.perf_counter() - ex.started
                tail.append(first)
                chunks = 1
                await send({"type": "http.response.body", "body": first, "more_body": True})
                try:
                    while (chunk := await response.next_chunk()) is not None:
                        tail.append(chunk)
                        chunks += 1
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                except UpstreamError as exc:
                    await self._broken(ex, node, exc, tail, sse, send)
                    return
            ex.finished = True
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:  # cancelled too (the client left): what was streamed counts against the key
            if response.status == 200:
                ex.tokens = self._tokens(ex, tail, chunks)

    @staticmethod
    def _tokens(ex: Exchange, tail: deque[bytes], chunks: int) -> tuple[int, int]:
        """The node's own counts from the end of its answer; for a stream cut before them, a generated
        token per chunk (the node sends one chunk a token) and the prompt uncounted."""
        prompt, generated = usage_of(b"".join(tail)[-TAIL_BYTES:], is_openai_path(ex.path))
        if generated == 0 and ex.streamed:
            generated = chunks
        return prompt, generated

    async def _broken(
        self, ex: Exchange, node: Node, exc: Exception, tail: deque[bytes], sse: bool, send: Send
    ) -> None:
        """The node broke off its answer after the client got part of it."""
        message = f"{node.name}: {exc}"
        node.failed(message)
        timed_out = isinstance(exc, TimedOut)
        ex.error = "timeout" if timed_out else "upstream"
        log.warning("gateway: node %s broke off request %s: %s", node.name, ex.request_id, message)
        if not ex.streamed:
            return  # unfinished: the server cuts the connection, so the client sees a broken body
        separator = b"\n\n" if sse else b"\n"
        gap = b"" if tail and tail[-1].endswith(separator) else separator
        if timed_out:
            status, text = 504, f"{exc}; the answer is cut"
        else:
            status, text = 502, "the node serving this request failed; the answer is cut"
        line = stream_error_line(ex.path, sse, status, text)
        ex.finished = True
        await send({"type": "http.response.body", "body": gap + line, "more_body": False})

    async def _relay_failure(self, ex: Exchange, send: Send, failure: Failure) -> None:
        """No node answered well: the last one's own error (a 5xx, or 404 when none has the model)."""
        assert failure.body is not None
        ex.status, ex.responded, ex.finished = failure.status, True, True
        ex.error = failure.kind
        headers = [(k, v) for k, v in failure.headers if k.lower() != b"content-length"]
        headers.append((b"content-length", b"%d" % len(failure.body)))
        headers.extend(ex.headers)
        await send({"type": "http.response.start", "status": failure.status, "headers": headers})
        await send({"type": "http.response.body", "body": failure.body, "more_body": False})

    async def _error(
        self,
        ex: Exchange,
        send: Send,
        status: int,
        message: str,
        kind: str,
        retry_after: float | None = None,
    ) -> None:
        ex.status, ex.error, ex.responded, ex.finished = status, kind, True, True
        await send_error(send, ex.path, status, message, retry_after, ex.headers)

    async def _report(self, ex: Exchange, ticket: Ticket | None) -> None:
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
