"""The node in front of an Ollama daemon: every request forwarded as it comes, every answer streamed back.

Nothing is parsed or buffered: the request body goes upstream as the client sends it, the response's
status, headers and body come back chunk by chunk (NDJSON and server-sent events included). The node's
own concerns stay in front: the request log, the API key and the browser-origin policy.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from urllib.parse import quote

import anyio
import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from avocado.config import Settings
from avocado.cors import cors_middleware
from avocado.discovery import ModelInfo
from avocado.headers import HOP_BY_HOP
from avocado.node.api import credentials, status
from avocado.node.api.errors import error_body
from avocado.node.api.health import HealthMiddleware
from avocado.node.api.hosts import HostCheckMiddleware, HostPolicy
from avocado.node.api.middleware import ApiKeyMiddleware, RequestLogMiddleware
from avocado.node.credentials import ApiKeys
from avocado.node.presence import Presence
from avocado.node.proxy.supervisor import OllamaSupervisor
from avocado.redact import redact_text, redact_url
from avocado.request_id import RequestIdMiddleware
from avocado.serving import RequestLimitsMiddleware, limits_of

__all__ = ["create_proxy_app"]

log = logging.getLogger(__name__)

# The upstream client sets its own Host; the node's server already answered any 100-continue.
_REQUEST_DROPPED = HOP_BY_HOP | {b"host", b"expect"}
# The node's server writes its own Date, Server and X-Request-ID (Access-Control-* are dropped too:
# the node's origin policy answers for the upstream).
_RESPONSE_DROPPED = HOP_BY_HOP | {b"date", b"server", b"x-request-id"}


class _ClientGone(Exception):
    """The client disconnected while its request body was still being forwarded."""


def _without_hop_by_hop(
    headers: list[tuple[bytes, bytes]], dropped: frozenset[bytes]
) -> list[tuple[bytes, bytes]]:
    """``headers`` minus ``dropped`` and minus the names a Connection header lists."""
    listed = {
        token.strip().lower()
        for name, value in headers
        if name.lower() == b"connection"
        for token in value.split(b",")
    }
    return [
        (name, value)
        for name, value in headers
        if (lowered := name.lower()) not in dropped and lowered not in listed
    ]


class OllamaProxy:
    """An ASGI app that forwards every HTTP request to ``upstream`` over one shared client.

    ``back_up`` (optional) waits for an upstream that refused a connection to answer again (a
    supervised daemon being restarted) and says whether it does; the request is then sent again.
    """

    def __init__(
        self,
        upstream: str,
        *,
        strip_authorization: bool,
        back_up: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.shown = redact_url(self.upstream)  # for logs, errors and status: no password
        self.strip_authorization = strip_authorization
        self.back_up = back_up
        self.client: httpx.AsyncClient | None = None

    def open(self) -> httpx.AsyncClient:
        client = httpx.AsyncClient(
            timeout=httpx.Timeout(None, connect=10.0),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
            follow_redirects=False,
            trust_env=False,
        )
        # No default headers: only what the client sent goes upstream (no Accept-Encoding of our own,
        # so a body is never compressed for a client that did not ask for it).
        for name in list(client.headers.keys()):
            del client.headers[name]
        self.client = client
        return client

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = self.client or self.open()
        path = scope.get("raw_path") or quote(scope["path"]).encode()
        url = self.upstream + path.decode("latin-1")
        if scope["query_string"]:
            url += "?" + scope["query_string"].decode("latin-1")
        headers = _without_hop_by_hop(list(scope["headers"]), _REQUEST_DROPPED)
        if self.strip_authorization:
            headers = [(name, value) for name, value in headers if name.lower() != b"authorization"]
        has_body = any(
            name.lower() in (b"content-length", b"transfer-encoding") for name, _ in scope["headers"]
        )
        body_sent = anyio.Event()

        async def body() -> AsyncIterator[bytes]:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise _ClientGone
                if message.get("body"):
                    yield message["body"]
                if not message.get("more_body", False):
                    body_sent.set()
                    return

        if not has_body:
            body_sent.set()
        request = client.build_request(
            scope["method"], url, headers=headers, content=body() if has_body else None
        )
        async with anyio.create_task_group() as tasks:

            async def watch_disconnect() -> None:
                await body_sent.wait()  # from then on, the only message left to receive is a disconnect
                message: Message = await receive()
                while message["type"] != "http.disconnect":
                    message = await receive()
                tasks.cancel_scope.cancel()  # stop waiting or relaying; closing stops the upstream

            tasks.start_soon(watch_disconnect)
            await self._forward(client, request, scope, send)
            tasks.cancel_scope.cancel()

    async def _forward(
        self, client: httpx.AsyncClient, request: httpx.Request, scope: Scope, send: Send
    ) -> None:
        """Send ``request`` upstream and its response on, chunk by chunk, as the chunks arrive."""
        try:
            response = await self._send(client, request)
        except _ClientGone:
            return
        except HTTPException as exc:  # the body went past a limit (RequestLimitsMiddleware) on its way
            await _answer(scope, send, exc.status_code, exc.detail, close=True)
            return
        except httpx.TransportError as exc:
            await self._bad_gateway(scope, send, exc)
            return
        try:
            headers = [
                (name, value)
                for name, value in _without_hop_by_hop(response.headers.raw, _RESPONSE_DROPPED)
                if not name.lower().startswith(b"access-control-")
            ]
            await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
            try:
                async for chunk in response.aiter_raw():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except httpx.TransportError as exc:
                # The status line is gone already: leaving the response unfinished makes the server cut
                # the connection, so the client sees a broken stream, not a short one that looks whole.
                log.warning("ollama at %s broke off a response: %s", self.shown, self._describe(exc))
                return
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            with anyio.CancelScope(shield=True):
                await response.aclose()

    async def _send(self, client: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
        try:
            return await client.send(request, stream=True)
        except httpx.ConnectError:
            # Nothing of the body was read yet, so the same request can go again once the daemon is back.
            if self.back_up is None or not await self.back_up():
                raise
            log.info(
                "ollama at %s is answering again; sending %s %s",
                self.shown,
                request.method,
                request.url.path,
            )
            return await client.send(request, stream=True)

    def _describe(self, exc: BaseException) -> str:
        return redact_text(_describe(exc), self.upstream)

    async def _bad_gateway(self, scope: Scope, send: Send, exc: httpx.TransportError) -> None:
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            message = f"ollama is not reachable at {self.shown}: {self._describe(exc)}"
        else:
            message = f"ollama at {self.shown} failed before answering: {self._describe(exc)}"
        log.warning("%s", message)
        await _answer(scope, send, 502, message)


async def _answer(scope: Scope, send: Send, status: int, message: str, *, close: bool = False) -> None:
    """An error of the node's own, in the shape of the route's API."""
    body = json.dumps(error_body(scope["path"], status, message)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if close:  # what is left of the request's body is not read
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def create_proxy_app(settings: Settings, upstream_url: str | None = None) -> Starlette:
    """The node as a proxy to the Ollama daemon at ``upstream_url`` (default: ``settings.ollama_url``).

    With neither, the node runs ``ollama serve`` itself for as long as the app runs (see
    :class:`OllamaSupervisor`, which raises ``OllamaNotFound`` here when there is no binary).
    """
    upstream = upstream_url or settings.ollama_url
    supervisor = OllamaSupervisor(settings) if upstream is None else None
    if supervisor is not None:
        upstream = supervisor.url
    assert upstream is not None
    proxy = OllamaProxy(
        upstream,
        strip_authorization=settings.api_key is not None,
        back_up=supervisor.answering if supervisor is not None else None,
    )
    presence = Presence(settings, lambda: upstream_models(upstream), ("ollama", "openai", "embeddings"))
    api_keys = ApiKeys(settings.api_key.get_secret_value()) if settings.api_key is not None else None

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        client = proxy.open()
        try:
            if supervisor is not None:
                await supervisor.start()
            else:
                await _announce(client, proxy.upstream)
            await presence.start()
            yield
        finally:
            await presence.close()
            if supervisor is not None:
                await supervisor.stop()
            await client.aclose()

    async def readiness() -> str | None:
        if presence.status != "online":
            return f"the node is {presence.status}"
        try:
            answer = await (proxy.client or proxy.open()).get(f"{proxy.upstream}/", timeout=3.0)
        except httpx.HTTPError as exc:
            return f"ollama at {proxy.upstream} does not answer: {_describe(exc)}"
        if answer.status_code != 200:
            return f"ollama at {proxy.upstream} answers {answer.status_code}"
        return None

    middleware = [
        Middleware(RequestIdMiddleware),
        Middleware(RequestLogMiddleware),
        Middleware(RequestLimitsMiddleware, **limits_of(settings)),
        # Outside the key and the Host check, as GET / is: probes reach the node by any address.
        Middleware(HealthMiddleware, readiness=readiness),
        Middleware(HostCheckMiddleware, policy=HostPolicy.for_node(settings, lambda: presence.public_url)),
        cors_middleware(settings.origins),  # outside the key: a browser's preflight carries none
        *([Middleware(ApiKeyMiddleware, keys=api_keys)] if api_keys is not None else []),
    ]
    routes = [
        Route("/api/avocado/status", status.status, methods=["GET"]),
        Route("/api/avocado/drain", status.drain, methods=["POST"]),
        Route("/api/avocado/credentials", credentials.change, methods=["POST"]),
        Route("/{path:path}", proxy),
    ]
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.settings = settings
    app.state.presence = presence
    app.state.api_keys = api_keys
    app.state.engine_status = lambda: {"kind": "ollama", "upstream": proxy.shown}
    app.state.proxy = proxy
    app.state.supervisor = supervisor
    return app


def upstream_models(upstream: str) -> list[ModelInfo]:
    """The daemon's models, for announcements (called off the event loop)."""
    response = httpx.get(f"{upstream}/api/tags", timeout=5.0)
    response.raise_for_status()
    return [
        ModelInfo(name=m["name"], digest=m.get("digest", ""), size=int(m.get("size", 0)))
        for m in response.json().get("models", [])
    ]


async def _announce(client: httpx.AsyncClient, upstream: str) -> None:
    """Say at startup whether the upstream answers; requests get a 502 while it does not."""
    try:
        response = await client.get(f"{upstream}/api/version", timeout=3.0)
        version = (
            response.json().get("version", "?") if response.is_success else f"HTTP {response.status_code}"
        )
        log.info("in front of ollama at %s (version %s)", redact_url(upstream), version)
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        log.warning(
            "ollama at %s does not answer yet (%s); requests get 502 until it does",
            redact_url(upstream),
            redact_text(_describe(exc), upstream),
        )
