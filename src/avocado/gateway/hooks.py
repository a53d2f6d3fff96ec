"""What the gateway's request path asks of keys, limits and metrics, in one place.

The proxy knows nothing about API keys, rate limits or Prometheus: before forwarding it asks an
:class:`Admission` for a :class:`Ticket` (which may refuse with a :class:`Refused`), and when the
response has ended (or failed) it hands the ticket an :class:`Outcome`. Implementations live in
``gateway/keys``, ``gateway/limits.py`` and ``gateway/metrics.py``; ``gateway/app.py`` chains them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from starlette.requests import Request

from avocado.names import model_allowed

__all__ = ["Admission", "Headers", "OpenAdmission", "Outcome", "Refused", "Ticket"]

Headers = tuple[tuple[bytes, bytes], ...]  # raw response headers (lower-case names)


class Refused(Exception):
    """The request may not go on: answered with ``status`` (401, 403, 429) and ``message``."""

    def __init__(
        self,
        status: int,
        message: str,
        retry_after: float | None = None,
        headers: Sequence[tuple[bytes, bytes]] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after  # seconds, for 429's Retry-After
        self.headers: Headers = tuple(headers)  # more for the answer (the key's rate-limit state)


@dataclass(slots=True)
class Outcome:
    """How one proxied request ended."""

    request_id: str
    model: str | None
    node: str | None  # the node that answered (its name/URL), None when none did
    status: int
    streamed: bool
    latency_s: float  # request in -> last byte out
    ttft_s: float | None = None  # request in -> first byte of the body out
    tokens_in: int = 0  # prompt tokens, from the node's own counters when it gave them
    tokens_out: int = 0  # generated tokens
    error: str | None = None  # short error kind ("upstream", "no_node", "cancelled", ...)
    attempts: int = 1  # nodes tried (failover)


@dataclass(slots=True)
class Ticket:
    """A request admitted: who it is (``key_id``, None when keys are off) and what to do at the end."""

    key_id: str | None = None
    key_name: str | None = None
    allowed_models: list[str] | None = None  # None: any model
    releases: list[object] = field(default_factory=list)  # opaque handles the admission releases
    headers: Headers = ()  # added to the answer: the key's rate-limit state (x-ratelimit-*)

    def allows(self, model: str) -> bool:
        """Whether the key may use ``model``: names compare as nodes list them (``m`` = ``m:latest``)."""
        return self.allowed_models is None or model_allowed(model, self.allowed_models)


class Admission(Protocol):
    async def admit(self, request: Request, model: str | None) -> Ticket:
        """Check the caller for ``model``; raise :class:`Refused` to answer instead of forwarding."""
        ...

    async def finish(self, ticket: Ticket, outcome: Outcome) -> None:
        """The request ended: release what ``admit`` took, count usage."""
        ...


class OpenAdmission:
    """Everyone is admitted (no keys, no limits): a gateway for one user on loopback."""

    async def admit(self, request: Request, model: str | None) -> Ticket:
        return Ticket()

    async def finish(self, ticket: Ticket, outcome: Outcome) -> None:
        return None
