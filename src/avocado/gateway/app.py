"""The gateway's ASGI application: one Ollama- and OpenAI-compatible endpoint in front of a :class:`NodePool`.

Model routes (``POST /api/generate``, ``/api/chat``, ``/v1/chat/completions``, ...) go through the
:class:`~avocado.gateway.proxy.GatewayProxy`. The listings merge what the healthy, online nodes serve:
``GET /api/tags``, ``/v1/models`` (and ``/v1/models/{model}``), ``/api/ps``. ``GET /api/avocado/nodes``
shows the pool (never a node's key). ``GET /`` and ``/api/version`` answer as Ollama does. Model
management (pull, create, copy, delete, push, blobs) goes to nodes through :mod:`avocado.gateway.manage`.

Every response carries ``X-Request-ID``. Listings are admitted like model requests (``model`` None),
so keys and limits apply to them too; only ``GET /`` and the health routes (:mod:`.health`) are open
to all.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from datetime import datetime
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI
from fastapi.telemetry import TelemetryConfig
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

import avocado
from avocado.cors import add_cors
from avocado.gateway.errors import error_response, install_error_handlers, retry_after_value
from avocado.gateway.health import ReadyCheck, health_routes
from avocado.gateway.hooks import Admission, OpenAdmission, Outcome, Refused, Ticket
from avocado.gateway.manage import Management, ManagementGuard
from avocado.gateway.nodes import Node, NodePool, normalize_model
from avocado.gateway.openapi import install_openapi
from avocado.gateway.proxy import MAX_BODY, MODEL_ROUTES, GatewayProxy, Observer
from avocado.gateway.routing import Router
from avocado.request_id import RequestIdMiddleware, request_id_of
from avocado.serving import Limits, RequestLimitsMiddleware

__all__ = ["AdminGuard", "Lifespan", "create_gateway_app", "merged_tags"]

AdminGuard = Callable[[Request], Awaitable[None]]  # raises Refused for callers who may not see the pool
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def create_gateway_app(
    pool: NodePool,
    *,
    admission: Admission | None = None,
    observers: Sequence[Observer] = (),
    extra_routers: Sequence[APIRouter] = (),
    origins: Sequence[str] = (),
    max_attempts: int = 3,
    admin_guard: AdminGuard | None = None,
    manage_guard: ManagementGuard | None = None,
    lifespan: Lifespan | None = None,
    ready_checks: Sequence[ReadyCheck] = (),
    limits: Limits | None = None,
) -> FastAPI:
    """The gateway over ``pool``; its lifespan enters ``lifespan`` (if any), then starts the pool's checks.

    ``admin_guard`` checks callers of ``GET /api/avocado/nodes`` (default: the admission, as listings);
    ``manage_guard`` callers of the model management routes (default: none, everyone may).
    ``ready_checks`` are what ``/health/ready`` asks besides a routable node (the database).
    ``limits`` bound request bodies (size, and how slowly they may come), model requests included.
    """
    gate = admission if admission is not None else OpenAdmission()
    router = Router(pool, max_attempts)
    max_body = MAX_BODY if limits is None else limits["max_body"]
    proxy = GatewayProxy(pool, router, gate, observers, max_body)

    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            if lifespan is not None:
                await stack.enter_async_context(lifespan(app))
            await pool.start()
            stack.push_async_callback(pool.close)
            yield

    # FastAPI's own OpenTelemetry hooks cost a check on every request; the gateway reports through
    # its observers (Prometheus) instead.
    quiet: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
    app = _GatewayApp(title="Avocado gateway", version=avocado.__version__, lifespan=run, telemetry=quiet)
    app.fast = RequestIdMiddleware(proxy if limits is None else RequestLimitsMiddleware(proxy, **limits))
    app.state.pool = pool
    app.state.router = router
    app.state.proxy = proxy
    install_error_handlers(app)
    _add_routes(app, proxy, _Listings(pool, gate, admin_guard), extra_routers)
    app.router.routes.extend(Management(pool, manage_guard).routes())
    app.router.routes.extend(health_routes(pool, ready_checks))
    install_openapi(app)
    add_cors(app, origins)
    if limits is not None:
        app.add_middleware(RequestLimitsMiddleware, **limits)
    app.add_middleware(RequestIdMiddleware)
    return app


class _GatewayApp(FastAPI):
    """FastAPI, with a short way in for model requests: nearly all the traffic, and what the gateway's
    speed is measured on. A ``POST`` to a model route without an ``Origin`` header (not from a
    browser, so CORS has nothing to add) goes straight to the proxy, with its request id; the
    middleware stack it skips (errors, CORS, routing) would only pass it on, at a cost of a fifth of
    the gateway's time per request. Everything else, browsers' model requests included, takes the
    full stack, where the same proxy is routed to.
    """

    fast: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.fast is not None
            and scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] in _MODEL_PATHS
            and not any(name == b"origin" for name, _ in scope["headers"])
        ):
            await self.fast(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


_MODEL_PATHS = frozenset(MODEL_ROUTES)


def _add_routes(
    app: FastAPI, proxy: GatewayProxy, listings: _Listings, extra_routers: Sequence[APIRouter]
) -> None:
    app.add_api_route("/", _root, methods=["GET", "HEAD"], include_in_schema=False)
    app.add_route("/api/version", _version, methods=["GET"])
    app.add_route("/api/tags", listings.tags, methods=["GET"])
    app.add_route("/api/ps", listings.ps, methods=["GET"])
    app.add_route("/v1/models", listings.models, methods=["GET"])
    app.add_route("/v1/models/{model:path}", listings.model, methods=["GET"])
    app.add_route("/api/avocado/nodes", listings.nodes, methods=["GET"])
    # Model routes first: the router tries routes in order, and these take nearly all the traffic.
    app.router.routes[:0] = [Route(path, proxy, methods=["POST"]) for path in MODEL_ROUTES]
    for extra in extra_routers:
        app.include_router(extra)


async def _root() -> PlainTextResponse:
    return PlainTextResponse("Ollama is running")


async def _version(request: Request) -> Response:
    return JSONResponse({"version": avocado.__version__})


def merged_tags(pool: NodePool) -> list[dict[str, Any]]:
    """The ``/api/tags`` entries of the healthy, online nodes, one per model name, by name."""
    merged: dict[str, dict[str, Any]] = {}
    for node in pool.nodes:
        if node.routable:
            for entry in node.tags:
                merged.setdefault(str(entry.get("name")), entry)
    return [merged[name] for name in sorted(merged)]


def _openai_model(entry: dict[str, Any]) -> dict[str, Any]:
    try:
        created = int(datetime.fromisoformat(str(entry["modified_at"])).timestamp())
    except (KeyError, ValueError):
        created = 0
    return {"id": entry["name"], "object": "model", "created": created, "owned_by": "library"}


class _Listings:
    """The routes that answer from the pool; admitted (model None) and finished like model requests."""

    def __init__(self, pool: NodePool, admission: Admission, admin_guard: AdminGuard | None) -> None:
        self.pool = pool
        self.admission = admission
        self.admin_guard = admin_guard

    async def tags(self, request: Request) -> Response:
        async def answer(ticket: Ticket) -> Response:
            return JSONResponse({"models": self._allowed(ticket)})

        return await self._admitted(request, answer)

    async def models(self, request: Request) -> Response:
        async def answer(ticket: Ticket) -> Response:
            data = [_openai_model(entry) for entry in self._allowed(ticket)]
            return JSONResponse({"object": "list", "data": data})

        return await self._admitted(request, answer)

    async def model(self, request: Request) -> Response:
        wanted = request.path_params["model"]

        async def answer(ticket: Ticket) -> Response:
            try:
                name = normalize_model(wanted)
            except ValueError:
                name = wanted
            for entry in self._allowed(ticket):
                if entry["name"] == name:
                    return JSONResponse(_openai_model(entry))
            return error_response(request.url.path, 404, f"model '{wanted}' not found")

        return await self._admitted(request, answer)

    async def ps(self, request: Request) -> Response:
        async def answer(ticket: Ticket) -> Response:
            nodes = [node for node in self.pool.nodes if node.routable]
            running = await asyncio.gather(*(self._node_ps(node) for node in nodes))
            merged: dict[str, dict[str, Any]] = {}
            for entries in running:
                for entry in entries:
                    name = str(entry.get("name"))
                    if ticket.allows(name):
                        merged.setdefault(name, entry)
            return JSONResponse({"models": [merged[name] for name in sorted(merged)]})

        return await self._admitted(request, answer)

    async def nodes(self, request: Request) -> Response:
        async def answer(ticket: Ticket) -> Response:
            return JSONResponse({"nodes": [node.describe() for node in self.pool.nodes]})

        if self.admin_guard is None:
            return await self._admitted(request, answer)
        try:
            await self.admin_guard(request)
        except Refused as refused:
            return _refusal(request, refused)
        return await answer(Ticket())

    def _allowed(self, ticket: Ticket) -> list[dict[str, Any]]:
        return [entry for entry in merged_tags(self.pool) if ticket.allows(str(entry["name"]))]

    async def _node_ps(self, node: Node) -> list[dict[str, Any]]:
        try:
            response = await self.pool.client.get(
                node.url + "/api/ps", headers=list(node.auth), timeout=self.pool.health_timeout
            )
            response.raise_for_status()
            models = response.json()["models"]
            return [entry for entry in models if isinstance(entry, dict)]
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return []

    async def _admitted(self, request: Request, answer: Callable[[Ticket], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        try:
            ticket = await self.admission.admit(request, None)
        except Refused as refused:
            return _refusal(request, refused)
        status = 500
        try:
            response = await answer(ticket)
            response.raw_headers.extend(ticket.headers)
            status = response.status_code
            return response
        finally:
            outcome = Outcome(
                request_id=request_id_of(request.scope),
                model=None,
                node=None,
                status=status,
                streamed=False,
                latency_s=time.perf_counter() - started,
            )
            await self.admission.finish(ticket, outcome)


def _refusal(request: Request, refused: Refused) -> Response:
    headers = None
    if refused.retry_after is not None:
        headers = {"Retry-After": retry_after_value(refused.retry_after).decode()}
    response = error_response(request.url.path, refused.status, refused.message, headers)
    response.raw_headers.extend(refused.headers)
    return response
