"""Delays between tries of something kept up for as long as the process runs.

The announcer's broker connection, a tunnel and a supervised ``ollama serve`` each retry forever:
the delay starts at ``first``, doubles per failed try up to ``maximum`` and starts over once the
thing works again (:meth:`Backoff.reset`). Jitter cuts each delay by up to a fraction at random, so
that nodes that lost the same broker do not all come back in the same instant. The exponent stops
growing once the cap is reached, so no number of failures (days of outage) can overflow it.

Retry libraries (tenacity, stamina) retry one call until it succeeds, with a stop condition; these
loops never stop, count their tries again after a healthy spell rather than after one success, and
cut a wait short on an event (a node that is stopping, a new broker URL), so they keep their own
loop and take only the delays from here. ``Sleep`` is what such a loop waits with: ``asyncio.sleep``,
or a stand-in in tests that lets hours of retries pass at once.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Awaitable, Callable

__all__ = ["Backoff", "Sleep"]

Sleep = Callable[[float], Awaitable[None]]


class Backoff:
    """Delays: ``first``, doubling up to ``maximum``, each cut by up to ``jitter`` (a fraction) at random."""

    def __init__(
        self,
        first: float = 1.0,
        maximum: float = 60.0,
        jitter: float = 0.25,
        rng: random.Random | None = None,
    ) -> None:
        if not 0 <= jitter < 1 or first <= 0 or maximum < first:
            raise ValueError("backoff needs 0 < first <= maximum and 0 <= jitter < 1")
        self.first, self.maximum, self.jitter = first, maximum, jitter
        self.rng = rng or random.Random()
        self.history: deque[float] = deque(maxlen=32)  # the delays handed out lately, oldest first
        self.tries = 0  # delays handed out since the last reset
        self._doublings = 0  # how often ``first`` was doubled: stops once the cap is reached

    def next(self) -> float:
        """The delay before the next try."""
        base = min(self.maximum, self.first * 2.0**self._doublings)
        if base < self.maximum:
            self._doublings += 1
        self.tries += 1
        delay = base * (1 - self.jitter * self.rng.random())
        self.history.append(delay)
        return delay

    def reset(self) -> None:
        """Start over from ``first``: what was retried works."""
        self.tries = 0
        self._doublings = 0
