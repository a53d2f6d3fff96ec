"""One node as the gateway sees it: where it is, what it serves, how it is doing."""

from __future__ import annotations

from typing import Any, Literal

from avocado.discovery import ModelInfo, redact_url
from avocado.gateway.nodes.breaker import Breaker
from avocado.names import normalize_model

__all__ = ["LATENCY_ALPHA", "Node", "NodeSource", "NodeStatus", "describe_error"]

NodeSource = Literal["static", "discovery"]
NodeStatus = Literal["online", "draining", "offline"]

LATENCY_ALPHA = 0.3  # weight of the newest sample in a node's latency average


def describe_error(exc: BaseException) -> str:
    """A short text for an exception (httpx's are often empty)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Node:
    """One node as the gateway sees it. Its API key only ever leaves as the ``Authorization`` header."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        api_key: str | None = None,
        source: NodeSource = "static",
        weight: float = 1.0,
        breaker: Breaker | None = None,
    ) -> None:
        self.name = name
        self.url = url.rstrip("/")
        self.source: NodeSource = source
        self.weight = weight
        self.breaker = breaker if breaker is not None else Breaker()
        self.status: NodeStatus = "online"
        self.healthy = True  # until a health check says otherwise
        self.checked = False  # a health check has answered (either way)
        self.unauthorized = False  # it refuses the gateway's key (so it is not healthy either)
        self.gone = False  # left discovery: no new requests, dropped once idle
        self.models: frozenset[str] = frozenset()
        self.tags: tuple[dict[str, Any], ...] = ()  # its /api/tags entries (or its announced models)
        self.in_flight = 0
        self.requests = 0  # requests sent to it, failed ones included
        self.latency_s: float | None = None  # average of health checks and time to first byte
        self.last_error: str | None = None
        self.auth: tuple[tuple[bytes, bytes], ...] = (
            ((b"authorization", b"Bearer " + api_key.encode()),) if api_key else ()
        )

    def __repr__(self) -> str:
        return f"Node({self.name!r}, {redact_url(self.url)!r}, {self.status}, healthy={self.healthy})"

    @property
    def has_api_key(self) -> bool:
        return bool(self.auth)

    @property
    def routable(self) -> bool:
        """Takes new requests (its breaker aside)."""
        return self.healthy and self.status == "online" and not self.gone

    def observe_latency(self, seconds: float) -> None:
        previous = self.latency_s
        self.latency_s = seconds if previous is None else previous + LATENCY_ALPHA * (seconds - previous)

    def succeeded(self, seconds: float) -> None:
        """A request got its first byte from the node after ``seconds``."""
        self.observe_latency(seconds)
        self.breaker.success()

    def failed(self, error: str) -> None:
        """A request failed through the node's fault (connection, timeout, 500, 502 or 504)."""
        self.last_error = error
        self.breaker.failure()

    def refused_key(self, error: str) -> None:
        """A request was refused the node's key (401/403): no more requests until a check passes."""
        self.healthy, self.unauthorized, self.last_error = False, True, error

    @property
    def health(self) -> str:
        """``healthy``, ``unhealthy`` or ``unauthorized`` (it refuses the gateway's key)."""
        if self.unauthorized:
            return "unauthorized"
        return "healthy" if self.healthy else "unhealthy"

    def forget_model(self, model: str) -> None:
        """The node said it does not have ``model`` (deleted since the last check)."""
        self.models = self.models - {model}

    def set_tags(self, entries: list[dict[str, Any]]) -> None:
        names = []
        for entry in entries:
            try:
                names.append(normalize_model(str(entry.get("name") or entry.get("model") or "")))
            except ValueError:
                continue
        self.tags = tuple(entries)
        self.models = frozenset(names)

    def set_announced(self, models: tuple[ModelInfo, ...]) -> None:
        """An announcement's model list, when it differs from what the node listed last."""
        entries = [{"name": m.name, "model": m.name, "size": m.size, "digest": m.digest} for m in models]
        names = {str(entry["name"]) for entry in entries}
        if names != {str(entry.get("name")) for entry in self.tags}:
            self.set_tags(entries)

    def describe(self) -> dict[str, Any]:
        """What ``GET /api/avocado/nodes`` shows: everything but the key."""
        return {
            "name": self.name,
            "url": redact_url(self.url),
            "source": self.source,
            "status": "offline" if self.gone else self.status,
            "healthy": self.healthy,
            "health": self.health,
            "breaker": self.breaker.state,
            "models": sorted(self.models),
            "in_flight": self.in_flight,
            "requests": self.requests,
            "latency_ms": None if self.latency_s is None else round(self.latency_s * 1000, 2),
            "consecutive_failures": self.breaker.failures,
            "last_error": self.last_error,
            "weight": self.weight,
            "api_key": self.has_api_key,
        }
