"""The management API's JSON: the gateway's nodes and its usage per user."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

__all__ = ["GatewayNodePublic", "UsagePublic"]


class GatewayNodePublic(BaseModel):
    """A node as the gateway sees it (its key never leaves the gateway)."""

    name: str
    url: str
    source: str | None = None
    status: str | None = None
    healthy: bool
    health: str | None = None
    breaker: str | None = None
    models: list[str]
    in_flight: int = 0
    requests: int = 0
    latency_ms: float | None = None
    last_error: str | None = None


class UsagePublic(BaseModel):
    """What the gateway metered for one user: ``email`` and ``name`` are ``null`` for an id that is
    no account here (one deleted since, or a user another client of the gateway named)."""

    user_id: str
    email: str | None
    name: str | None
    requests: int
    tokens_in: int
    tokens_out: int
    last_used_at: datetime | None
