"""Limits kept in this process, for one gateway (see :mod:`avocado.gateway.limits`)."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from avocado.gateway.hooks import Headers, Refused
from avocado.gateway.limits.base import (
    DEFAULT_LEASE_TIMEOUT,
    DEFAULT_WINDOW,
    PARALLEL_RETRY,
    KeyLimits,
    Kind,
    Lease,
    Standing,
    rate_limit_headers,
    refusal,
)

__all__ = ["MemoryLimiter"]


@dataclass(slots=True)
class _KeyState:
    requests: deque[float] = field(default_factory=deque)  # start times, oldest first
    tokens: deque[tuple[float, int]] = field(default_factory=deque)  # (end time, tokens), oldest first
    token_total: int = 0  # the sum of ``tokens``
    leases: dict[str, float] = field(default_factory=dict)  # lease id -> expiry

    def prune(self, now: float, window: float) -> None:
        since = now - window
        while self.requests and self.requests[0] <= since:
            self.requests.popleft()
        while self.tokens and self.tokens[0][0] <= since:
            self.token_total -= self.tokens.popleft()[1]
        for lease_id in [lease_id for lease_id, expiry in self.leases.items() if expiry <= now]:
            del self.leases[lease_id]

    def empty(self) -> bool:
        return not (self.requests or self.tokens or self.leases)

    def rpm_wait(self, rpm: int, now: float, window: float) -> float | None:
        """Seconds until one more request fits, or None if it fits now."""
        count = len(self.requests)
        if count < rpm:
            return None
        return window if rpm == 0 else self.requests[count - rpm] + window - now

    def standing(self, limits: KeyLimits, now: float, window: float) -> Headers:
        """The rate-limit headers for this key's state now (requests and tokens counted so far)."""
        requests = tokens = None
        if limits.rpm is not None:
            reset = self.requests[-1] + window - now if self.requests else 0.0
            requests = Standing(limits.rpm, limits.rpm - len(self.requests), reset)
        if limits.tpm is not None:
            reset = self.tokens[-1][0] + window - now if self.tokens else 0.0
            tokens = Standing(limits.tpm, limits.tpm - self.token_total, reset)
        return rate_limit_headers(requests, tokens)

    def tpm_wait(self, tpm: int, now: float, window: float) -> float | None:
        if self.token_total < tpm:
            return None
        left = self.token_total
        for ended, tokens in self.tokens:
            left -= tokens
            if left < tpm:
                return ended + window - now
        return window


class MemoryLimiter:
    """Limits kept in this process: for one gateway (replicas would each allow the full limits)."""

    def __init__(
        self,
        *,
        window_seconds: float = DEFAULT_WINDOW,
        lease_timeout: float = DEFAULT_LEASE_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window = window_seconds
        self.lease_timeout = lease_timeout
        self._clock = clock
        self._keys: dict[str, _KeyState] = {}
        self._lock = threading.Lock()  # nothing awaits inside; this only guards against threads
        self._next_sweep = clock() + window_seconds

    async def acquire(self, key_id: str, limits: KeyLimits) -> Lease:
        if limits.unlimited:
            return Lease(key_id, limits)
        with self._lock:
            now = self._clock()
            self._sweep(now)
            state = self._keys.setdefault(key_id, _KeyState())
            state.prune(now, self.window)
            refused = self._check(state, limits, now)
            if refused is not None:
                raise refused
            lease = Lease(key_id, limits, _release=self._release)
            if limits.rpm is not None:
                state.requests.append(now)
            if limits.max_parallel is not None:
                state.leases[lease.lease_id] = now + self.lease_timeout
            lease.headers = state.standing(limits, now, self.window)
            return lease

    async def aclose(self) -> None:
        return None

    def _check(self, state: _KeyState, limits: KeyLimits, now: float) -> Refused | None:
        waits: list[tuple[Kind, float]] = []
        if limits.rpm is not None and (wait := state.rpm_wait(limits.rpm, now, self.window)) is not None:
            waits.append(("rpm", wait))
        if limits.tpm is not None and (wait := state.tpm_wait(limits.tpm, now, self.window)) is not None:
            waits.append(("tpm", wait))
        if limits.max_parallel is not None and len(state.leases) >= limits.max_parallel:
            waits.append(("parallel", PARALLEL_RETRY))
        if not waits:
            return None
        headers = state.standing(limits, now, self.window)
        return refusal(waits[0][0], limits, max(wait for _, wait in waits), self.window, headers)

    async def _release(self, lease: Lease, tokens: int) -> None:
        with self._lock:
            state = self._keys.setdefault(lease.key_id, _KeyState())
            state.leases.pop(lease.lease_id, None)
            if tokens > 0:
                state.tokens.append((self._clock(), tokens))
                state.token_total += tokens

    def _sweep(self, now: float) -> None:
        """Once per window, forget keys with nothing left in their windows."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.window
        for key_id, state in list(self._keys.items()):
            state.prune(now, self.window)
            if state.empty():
                del self._keys[key_id]
