"""A node's circuit breaker: after enough node faults in a row, no requests until a probe succeeds."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

__all__ = ["Breaker", "BreakerState"]

BreakerState = Literal["closed", "open", "half_open"]


class Breaker:
    """Closed, then open after ``threshold`` failures in a row; after ``cooldown`` s one probe may pass.

    The probe's success closes the breaker; its failure opens it for another ``cooldown``.
    """

    def __init__(
        self, threshold: int = 3, cooldown: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self.state: BreakerState = "closed"
        self.failures = 0  # consecutive
        self.opened_at = 0.0

    def available(self) -> bool:
        """Whether :meth:`acquire` would let a request through now (without taking the probe)."""
        if self.state == "closed":
            return True
        return self.state == "open" and self._clock() - self.opened_at >= self.cooldown

    def acquire(self) -> bool:
        """Let one request through: any while closed; the single half-open probe once the cooldown passed."""
        if self.state == "closed":
            return True
        if self.state == "open" and self._clock() - self.opened_at >= self.cooldown:
            self.state = "half_open"
            return True
        return False

    def success(self) -> None:
        self.failures = 0
        self.state = "closed"

    def failure(self) -> None:
        self.failures += 1
        if self.state == "half_open" or (self.state == "closed" and self.failures >= self.threshold):
            self.state = "open"
            self.opened_at = self._clock()

    def release(self) -> None:
        """A probe that ended without a verdict (the client left): the next request may probe."""
        if self.state == "half_open":
            self.state = "open"
