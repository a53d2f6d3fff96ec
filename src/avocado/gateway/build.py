"""``build_gateway(settings)``: storage, keys, limits, metrics, discovery and the node pool, wired.

Everything a replica needs to share with another lives outside it: keys in the database
(PostgreSQL when ``AVOCADO_DATABASE_URL`` is set), limits in Redis (``--redis-url``), nodes on
RabbitMQ (``--discover``). Without them the same code runs on embedded defaults: SQLite in the
home directory, in-process limits and static nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from avocado.config import GatewaySettings
from avocado.db import make_engine, make_sessionmaker, upgrade
from avocado.discovery import DiscoveryWatcher, Registry, redact_url
from avocado.gateway.admission import GatewayAdmission
from avocado.gateway.app import create_gateway_app
from avocado.gateway.keys import KeyAdmission, KeyService, keys_router, master_guard
from avocado.gateway.limits import Limiter, MemoryLimiter, RedisLimiter
from avocado.gateway.metrics import GatewayMetrics
from avocado.gateway.nodes import NodePool

__all__ = ["build_gateway"]

log = logging.getLogger(__name__)

DISCOVERY_RETRY = 5.0  # seconds between tries while the broker cannot be reached at start


def build_gateway(settings: GatewaySettings) -> FastAPI:
    engine = make_engine(settings.database)
    upgrade(engine)
    keys = KeyService(make_sessionmaker(engine), cache_ttl=settings.key_cache_seconds)
    master = settings.master_key.get_secret_value() if settings.master_key else None
    limiter: Limiter = (
        RedisLimiter(settings.redis_url.get_secret_value()) if settings.redis_url else MemoryLimiter()
    )
    metrics = GatewayMetrics()
    registry = Registry() if settings.amqp_url else None
    pool = NodePool(
        settings.nodes,
        registry,
        health_interval=settings.health_interval,
        breaker_failures=settings.breaker_failures,
        breaker_cooldown=settings.breaker_cooldown,
    )
    admission = GatewayAdmission(KeyAdmission(keys, master, settings.keys_required), limiter, metrics)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        keys.start()
        watching = None
        if registry is not None and settings.amqp_url is not None:
            watcher = DiscoveryWatcher(settings.amqp_url.get_secret_value(), registry)
            watching = asyncio.create_task(_watch(watcher), name="gateway-discovery")
        try:
            yield
        finally:
            if watching is not None:
                watching.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watching
            keys.close()
            await limiter.aclose()
            engine.dispose()

    app = create_gateway_app(
        pool,
        admission=admission,
        extra_routers=[keys_router(keys, master)],
        origins=settings.origins,
        manage_guard=master_guard(master, settings.keys_required),
        lifespan=lifespan,
    )
    app.router.routes.append(Route("/metrics", _metrics_endpoint(metrics, pool), methods=["GET"]))
    app.state.settings = settings
    app.state.keys = keys
    app.state.metrics = metrics
    return app


async def _watch(watcher: DiscoveryWatcher) -> None:
    """Start watching; while the broker cannot be reached, try again (the gateway serves meanwhile)."""
    while True:
        try:
            await watcher.start()
            break
        except Exception as exc:
            log.warning(
                "discovery broker %s unreachable (%s); retrying in %gs",
                redact_url(watcher.amqp_url),
                type(exc).__name__,
                DISCOVERY_RETRY,
            )
            await watcher.close()
            await asyncio.sleep(DISCOVERY_RETRY)
    try:
        await asyncio.Event().wait()  # until cancelled at shutdown
    finally:
        await watcher.close()


def _metrics_endpoint(metrics: GatewayMetrics, pool: NodePool) -> Callable[[Request], Awaitable[Response]]:
    """``GET /metrics``, with the node gauges brought up to date at each scrape."""
    shown: set[str] = set()

    async def endpoint(request: Request) -> Response:
        current = {node.name: node for node in pool.nodes}
        for name in shown - current.keys():
            metrics.remove_node(name)
        for name, node in current.items():
            metrics.set_node(name, node.healthy, node.in_flight)
        shown.clear()
        shown.update(current)
        body, kind = metrics.render(request.headers.get("accept"))
        return Response(body, media_type=kind)

    return endpoint
