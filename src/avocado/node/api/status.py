"""``GET /api/avocado/status`` (what runs and how it is reached) and ``POST /api/avocado/drain``."""

from __future__ import annotations

import os
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

import avocado
from avocado.config import Settings
from avocado.node.access import key_report
from avocado.node.credentials import ApiKeys
from avocado.node.presence import Presence

__all__ = ["drain", "status", "status_body"]


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
