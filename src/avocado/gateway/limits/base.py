"""What every limiter shares: a key's limits, the lease a request holds, the refusal, the headers.

See :mod:`avocado.gateway.limits` for how the limits are counted.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from avocado.gateway.hooks import Headers, Refused
from avocado.units import format_duration

__all__ = [
    "DEFAULT_LEASE_TIMEOUT",
    "DEFAULT_WINDOW",
    "PARALLEL_RETRY",
    "KeyLimits",
    "Kind",
    "Lease",
    "Limiter",
    "Standing",
    "rate_limit_headers",
    "refusal",
]

DEFAULT_WINDOW = 60.0  # seconds: "per minute"
DEFAULT_LEASE_TIMEOUT = 600.0  # seconds a lease counts as in flight at most

Kind = Literal["rpm", "tpm", "parallel"]
PARALLEL_RETRY = 1  # seconds: a slot frees when some request ends, which nobody can tell in advance


@dataclass(frozen=True, slots=True)
class KeyLimits:
    """One key's limits; ``None`` is no limit. ``0`` refuses every request."""

    rpm: int | None = None  # requests per minute
    tpm: int | None = None  # tokens (prompt + generated) per minute
    max_parallel: int | None = None  # requests in flight at once

    def __post_init__(self) -> None:
        for name in ("rpm", "tpm", "max_parallel"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must not be negative, not {value}")

    @property
    def unlimited(self) -> bool:
        return self.rpm is None and self.tpm is None and self.max_parallel is None


@dataclass(frozen=True, slots=True)
class Standing:
    """Where a key stands against one of its limits: what is left, and when it is full again."""

    limit: int
    remaining: int
    reset: float  # seconds until the whole limit is free again


def rate_limit_headers(requests: Standing | None, tokens: Standing | None) -> Headers:
    """OpenAI's ``x-ratelimit-*`` headers for the limits a key has (none for those it has not)."""
    headers: list[tuple[bytes, bytes]] = []
    for kind, standing in ((b"requests", requests), (b"tokens", tokens)):
        if standing is not None:
            headers += [
                (b"x-ratelimit-limit-" + kind, b"%d" % standing.limit),
                (b"x-ratelimit-remaining-" + kind, b"%d" % max(0, standing.remaining)),
                (b"x-ratelimit-reset-" + kind, format_duration(standing.reset).encode()),
            ]
    return tuple(headers)


_Release = Callable[["Lease", int], Awaitable[None]]


@dataclass(eq=False, slots=True)
class Lease:
    """A request admitted under ``limits``; :meth:`release` it once, when its response has ended."""

    key_id: str
    limits: KeyLimits
    lease_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    _release: _Release | None = field(default=None, repr=False)
    released: bool = field(default=False, init=False)
    headers: Headers = ()  # the key's standing once this request is counted (x-ratelimit-*)

    async def release(self, tokens: int = 0) -> None:
        """The request is over and used ``tokens`` (prompt + generated); a second call does nothing.

        The release goes through even if the caller is cancelled meanwhile (a client went away).
        """
        if self.released:
            return
        self.released = True
        if self._release is not None:
            counted = max(0, tokens) if self.limits.tpm is not None else 0
            await asyncio.shield(self._release(self, counted))


class Limiter(Protocol):
    async def acquire(self, key_id: str, limits: KeyLimits) -> Lease:
        """Admit one request of ``key_id`` or raise :class:`Refused` (429) naming the limit reached."""
        ...

    async def aclose(self) -> None:
        """Let go of connections (leases still out may be released no more)."""
        ...


def refusal(kind: Kind, limits: KeyLimits, wait: float, window: float, headers: Headers) -> Refused:
    per = "per minute" if window == DEFAULT_WINDOW else f"per {window:g} s"
    if kind == "rpm":
        message = f"rate limit exceeded: {limits.rpm} requests {per} for this key"
    elif kind == "tpm":
        message = f"token limit exceeded: {limits.tpm} tokens {per} for this key"
    else:
        message = f"too many parallel requests: at most {limits.max_parallel} at once for this key"
    return Refused(429, message, retry_after=max(1, math.ceil(wait - 1e-6)), headers=headers)
