"""The node's ASGI application: store, engine and routes wired together."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

import avocado
from avocado.config import Settings
from avocado.cors import add_cors
from avocado.discovery import ModelInfo
from avocado.node.api import credentials, embed, generate, models, openai, status, transfer
from avocado.node.api.docs import install_openapi
from avocado.node.api.errors import install_error_handlers
from avocado.node.api.health import HealthMiddleware
from avocado.node.api.hosts import HostCheckMiddleware, HostPolicy
from avocado.node.api.middleware import (
    ApiKeyMiddleware,
    JsonBodyMiddleware,
    RequestLogMiddleware,
)
from avocado.node.api.status import gpu_report, placement_report
from avocado.node.credentials import ApiKeys
from avocado.node.engine import ManagerConfig, ModelManager
from avocado.node.presence import Presence
from avocado.node.registry.server import Uploads
from avocado.node.registry.server import router as registry_router
from avocado.node.service import NodeService
from avocado.node.store.bundled import register_bundled_models
from avocado.node.store.store import ModelStore
from avocado.request_id import RequestIdMiddleware
from avocado.serving import RequestLimitsMiddleware, limits_of
from avocado.units import format_size

__all__ = ["CAPABILITIES", "create_app", "open_store"]

log = logging.getLogger(__name__)

GIL_SWITCH_INTERVAL = 0.0005  # seconds
# What an announcement says the node offers (gateways route by these).
CAPABILITIES = ("ollama", "openai", "embeddings", "registry")


def open_store(settings: Settings) -> ModelStore:
    """Open the model store, registering the bundled models on first start."""
    store = ModelStore(settings.models_dir)
    if settings.register_bundled_models:
        added = register_bundled_models(store, settings.home / "state" / "bundled.json")
        if added:
            log.info("registered bundled models: %s", ", ".join(added))
    return store


def create_app(settings: Settings) -> FastAPI:
    store = open_store(settings)
    manager = ModelManager(
        ManagerConfig(
            num_thread=settings.threads,
            num_batch=settings.num_batch,
            parallel=settings.parallel,
            max_queue=settings.max_queue,
            keep_alive=settings.keep_alive_seconds,
            max_loaded=settings.max_loaded_models,
            max_memory=settings.memory_budget,
            prompt_cache=settings.prompt_cache_bytes,
            stream_interval=settings.stream_interval_seconds,
            num_ctx=settings.num_ctx,
            num_gpu=settings.num_gpu,
            main_gpu=settings.main_gpu,
            tensor_split=tuple(settings.tensor_split) if settings.tensor_split else None,
        )
    )

    def list_models() -> list[ModelInfo]:
        return [ModelInfo(name=m.name.display, digest=m.digest, size=m.size) for m in store.list()]

    presence = Presence(settings, list_models, CAPABILITIES)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Runner threads need the GIL back between decodes while the event loop serializes chunks;
        # Python's default 5 ms switch interval would stall a decode step that long (measured:
        # aggregate tokens/s at 4-8 streams up by 10-15%).
        sys.setswitchinterval(GIL_SWITCH_INTERVAL)
        manager.start()
        for gpu in await manager.refresh_gpus():
            log.info("GPU %d: %s (%s), %s free", gpu.index, gpu.name, gpu.description, format_size(gpu.free))
        sweeper = asyncio.create_task(uploads.sweep_forever(), name="upload-sweeper")
        await presence.start()
        try:
            yield
        finally:
            await presence.close()  # announces offline while the node still answers
            sweeper.cancel()
            await manager.close()

    app = FastAPI(title="Avocado node", version=avocado.__version__, lifespan=lifespan)
    app.state.settings = settings
    app.state.service = NodeService(settings, store, manager)
    app.state.presence = presence
    api_keys = ApiKeys(settings.api_key.get_secret_value()) if settings.api_key is not None else None
    app.state.api_keys = api_keys  # replaced while running by POST /api/avocado/credentials
    uploads = app.state.registry_uploads = Uploads(store, settings.upload_expiry_seconds)

    def engine_status() -> dict[str, Any]:
        runners = {name: loaded.runner for name, loaded in manager.loaded.items()}
        return {
            "kind": "embedded",
            "loaded": list(runners),
            "models": len(store.list()),
            "gpus": [gpu_report(gpu) for gpu in manager.gpus],
            "placement": {name: placement_report(runner) for name, runner in runners.items()},
            "prompt_cache": {name: runner.prompt_cache.report() for name, runner in runners.items()},
            "slots": {
                name: {"busy": runner.busy_slots, "paused": runner.paused_slots, "total": len(runner.slots)}
                for name, runner in runners.items()
            },
        }

    app.state.engine_status = engine_status
    install_error_handlers(app)
    install_openapi(app)

    @app.get("/", response_class=PlainTextResponse)
    @app.head("/", response_class=PlainTextResponse)
    async def root() -> str:
        return "Ollama is running"

    for module in (models, transfer, generate, embed, openai):
        app.include_router(module.router)
    app.add_api_route("/api/avocado/status", status.status, methods=["GET"], include_in_schema=False)
    app.add_api_route("/api/avocado/drain", status.drain, methods=["POST"], include_in_schema=False)
    app.add_api_route(
        "/api/avocado/credentials", credentials.change, methods=["POST"], include_in_schema=False
    )
    app.include_router(registry_router)
    if api_keys is not None:
        app.add_middleware(ApiKeyMiddleware, keys=api_keys)
    add_cors(app, settings.origins)  # outside the key: a browser's preflight carries none
    app.add_middleware(HostCheckMiddleware, policy=HostPolicy.for_node(settings, lambda: presence.public_url))

    async def readiness() -> str | None:
        if presence.status != "online":
            return f"the node is {presence.status}"
        if not manager.running:
            return "the engine is not running"
        if not (store.blobs_dir.is_dir() and store.manifests_dir.is_dir()):
            return f"the model store at {store.root} cannot be read"
        return None

    # Outside the key and the Host check, as GET / is: probes reach the node by any address.
    app.add_middleware(HealthMiddleware, readiness=readiness)
    app.add_middleware(RequestLimitsMiddleware, **limits_of(settings))
    app.add_middleware(JsonBodyMiddleware)
    app.add_middleware(RequestLogMiddleware)
    app.add_middleware(RequestIdMiddleware)  # outermost: every response, 401s included, carries the id
    return app
