"""``GET /api/avocado/status`` (what runs and how it is reached) and ``POST /api/avocado/drain``."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse

import avocado
from avocado.config import Settings
from avocado.node.access import key_report
from avocado.node.credentials import ApiKeys
from avocado.node.presence import Presence

if TYPE_CHECKING:  # the node in front of Ollama uses this module too, and loads no llama.cpp
    from avocado.node.engine.offload import GpuDevice
    from avocado.node.engine.runner import Runner

__all__ = ["drain", "gpu_report", "placement_report", "status", "status_body"]


def gpu_report(gpu: GpuDevice) -> dict[str, Any]:
    """A GPU of the node as last seen (free memory then)."""
    return {
        "index": gpu.index,
        "name": gpu.name,
        "description": gpu.description,
        "total": gpu.total,
        "free": gpu.free,
    }


def placement_report(runner: Runner) -> dict[str, Any]:
    """Which devices serve a loaded model: its layers on each GPU and the memory they take."""
    plan = runner.offload
    if plan is None:
        return {"processor": "100% CPU", "gpu_layers": 0, "size_vram": 0, "devices": []}
    devices = [
        {"index": share.index, "name": share.name, "description": share.description}
        | {"layers": share.layers, "size_vram": share.vram}
        for share in plan.devices
    ]
    return {
        "processor": plan.processor,
        "gpu_layers": plan.layers,
        "layers": plan.layer_count,
        "split_mode": plan.split_mode,
        "size_vram": plan.vram,
        "devices": devices,
    }


def status_body(
    settings: Settings, presence: Presence, engine: dict[str, Any], keys: ApiKeys | None = None
) -> dict[str, Any]:
    return {
        "version": avocado.__version__,
        "pid": os.getpid(),
        "started_at": presence.started_at.isoformat().replace("+00:00", "Z"),
        "local_url": settings.local_url,
        "api_key": key_report(settings, keys.current if keys is not None else None),
        "engine": engine,
        **presence.report(),
    }


async def status(request: Request) -> JSONResponse:
    state = request.app.state
    engine: dict[str, Any] = state.engine_status()
    return JSONResponse(status_body(state.settings, state.presence, engine, state.api_keys))


async def drain(request: Request) -> JSONResponse:
    """Announce ``draining``: gateways send nothing new; what runs finishes."""
    presence: Presence = request.app.state.presence
    presence.set_status("draining")
    return JSONResponse({"status": presence.status})
