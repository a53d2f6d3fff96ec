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
from collections.abc import AsyncIterator

from fastapi import FastAPI

from avocado.config import GatewaySettings
from avocado.db import make_engine, make_sessionmaker, upgrade
from avocado.discovery import DiscoveryWatcher, Registry, describe_broker_error, redact_url
from avocado.gateway.admission import GatewayAdmission
from avocado.gateway.app import create_gateway_app
from avocado.gateway.health import database_check
from avocado.gateway.keys import KeyAdmission, KeyService, keys_router, master_guard, metrics_guard
from avocado.gateway.limits import Limiter, MemoryLimiter, RedisLimiter
from avocado.gateway.metrics import GatewayMetrics, metrics_route
from avocado.gateway.nodes import NodePool
from avocado.serving import limits_of

__all__ = ["build_gateway"]

log = logging.getLogger(__name__)

DISCOVERY_RETRY = 5.0  # seconds between tries while the broker cannot be reached at start


def build_gateway(settings: GatewaySettings) -> FastAPI:
    engine = make_engine(settings.database)
    upgrade(engine)
    keys = KeyService(make_sessionmaker(engine), cache_ttl=settings.key_cache_seconds)
    master = settings.master_key.get_secret_value() if settings.master_key else None
    metrics_token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    limiter: Limiter = (
        RedisLimiter(settings.redis_url.get_secret_value()) if settings.redis_url else MemoryLimiter()
    )
    metrics = GatewayMetrics()
    registry = Registry() if settings.amqp_url else None
    pool = NodePool(
        settings.nodes,
        registry,
        discovery_api_key=settings.discover_key.get_secret_value() if settings.discover_key else None,
        health_interval=settings.health_interval,
        breaker_failures=settings.breaker_failures,
        breaker_cooldown=settings.breaker_cooldown,
        first_byte_timeout=settings.first_byte_timeout_seconds,
        stream_idle_timeout=settings.stream_idle_timeout_seconds,
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
        manage_guard=master_guard(master, settings.keys_required, settings.open_management),
        lifespan=lifespan,
        ready_checks=[database_check(engine)],
        limits=limits_of(settings),
    )
    guard = metrics_guard(master, metrics_token, settings.keys_required)
    app.router.routes.append(metrics_route(metrics, pool, guard))
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
                describe_broker_error(exc, watcher.amqp_url),
                DISCOVERY_RETRY,
            )
            await watcher.close()
            await asyncio.sleep(DISCOVERY_RETRY)
    try:
        await asyncio.Event().wait()  # until cancelled at shutdown
    finally:
        await watcher.close()
