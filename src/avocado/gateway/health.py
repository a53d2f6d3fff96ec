"""``GET /health/live`` and ``GET /health/ready``, for load balancers and orchestrators; no key needed.

- **live**: the process answers (its event loop turns). Always ``200 {"status": "alive"}``.
- **ready**: the gateway can serve requests now: every check it was given passes (the database that
  holds the keys answers ``SELECT 1`` within two seconds) and at least one node is routable
  (healthy, online, not left, its breaker not open). ``200 {"status": "ready", "nodes": N}``, else
  ``503 {"status": "unavailable", "reasons": [...]}``. A replica that sees no node takes no traffic
  that another replica could serve; Redis is not a condition, since limits let requests through
  while it is away. Reasons never include a database URL or an exception's text.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy import Engine, text
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from avocado.gateway.nodes import NodePool

__all__ = ["DATABASE_TIMEOUT", "LIVE_PATH", "READY_PATH", "ReadyCheck", "database_check", "health_routes"]

LIVE_PATH = "/health/live"
READY_PATH = "/health/ready"
DATABASE_TIMEOUT = 2.0  # seconds

ReadyCheck = Callable[[], Awaitable[str | None]]  # None when ready, else the reason why not
_NO_STORE = {"Cache-Control": "no-store"}


def database_check(engine: Engine, timeout: float = DATABASE_TIMEOUT) -> ReadyCheck:
    """A readiness check: ``engine``'s database answers ``SELECT 1`` within ``timeout`` seconds."""

    def ping() -> None:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    async def check() -> str | None:
        try:
            await asyncio.wait_for(asyncio.to_thread(ping), timeout)
        except TimeoutError:
            return f"database: no answer within {timeout:g}s"
        except Exception as exc:  # the driver's text may hold a host or a user name: the kind only
            return f"database: unreachable ({type(exc).__name__})"
        return None

    return check


def nodes_reason(pool: NodePool) -> str | None:
    """Why no node can take a request (``None`` when one can)."""
    nodes = [node for node in pool.nodes if not node.gone]
    if any(node.routable and node.breaker.available() for node in nodes):
        return None
    if not nodes:
        return "nodes: none known"
    states = {"unauthorized": 0, "unhealthy": 0, "draining": 0, "breaker open": 0}
    for node in nodes:
        if node.unauthorized:
            states["unauthorized"] += 1
        elif not node.healthy:
            states["unhealthy"] += 1
        elif node.status != "online":
            states["draining"] += 1
        else:
            states["breaker open"] += 1
    counted = ", ".join(f"{count} {state}" for state, count in states.items() if count)
    return f"nodes: none routable ({counted})"


def health_routes(pool: NodePool, checks: Sequence[ReadyCheck] = ()) -> list[Route]:
    """The two routes, over ``pool`` and ``checks`` (run in turn on every ``/health/ready``)."""

    async def live(request: Request) -> Response:
        return JSONResponse({"status": "alive"}, headers=_NO_STORE)

    async def ready(request: Request) -> Response:
        reasons = [reason for check in checks if (reason := await check()) is not None]
        if (reason := nodes_reason(pool)) is not None:
            reasons.append(reason)
        if reasons:
            return JSONResponse({"status": "unavailable", "reasons": reasons}, 503, headers=_NO_STORE)
        routable = sum(1 for node in pool.nodes if node.routable and node.breaker.available())
        return JSONResponse({"status": "ready", "nodes": routable}, headers=_NO_STORE)

    return [Route(LIVE_PATH, live, methods=["GET"]), Route(READY_PATH, ready, methods=["GET"])]
